#!/usr/bin/python3
"""Which b-trees a group commit writes: WAL frames per commit, by table or
index. Starts `hookflow serve --sync full` on a one-step workflow (`return 1`),
loads it with wrk (64 connections, a 1 KiB JSON body) for S seconds, SIGKILLs
it mid-load, then reads the frames of the live WAL (those whose salt matches
its header: the current cycle) and names each frame's page by SQLite's dbstat
on a copy of the database and WAL. Page 1 shows as sqlite_schema (the header
holds the database's size: written whenever a commit grows the file).

    scripts/wal_frames.py BIN [-s 3] [--dir DIR]

A measurement, not a test; 127.0.0.1 only; the server is stopped by its PID."""
import argparse, json, os, re, shutil, signal, sqlite3, struct, subprocess
import tempfile, time

WF = ("name: b\non:\n  webhook:\n    path: /b\n    methods: [POST]\n"
      "steps:\n  - id: s\n    run: |\n      return 1\n")
BODY = json.dumps({"k%03d" % i: "v" * 8 for i in range(52)})  # 1,040 bytes


def serve(binary, root):
    os.makedirs(root + "/wf")
    os.makedirs(root + "/sc")
    with open(root + "/wf/b.yml", "w") as f:
        f.write(WF)
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0",
                          "--workflows", root + "/wf", "--scripts",
                          root + "/sc", "--state", root + "/hookflow.db",
                          "--data", root + "/data.db", "--sync", "full"],
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        line = p.stderr.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return p, int(m.group(1))
    p.kill()
    p.wait()
    raise SystemExit("the server did not start")


def frames(wal):
    """[{page: frames}] per commit of the WAL's current cycle."""
    psz, s1, s2 = struct.unpack(">I", wal[8:12])[0], *struct.unpack(
        ">II", wal[16:24])
    off, cur, commits = 32, {}, []
    while off + 24 + psz <= len(wal):
        pg, dbsz, f1, f2 = struct.unpack(">4I", wal[off:off + 16])
        if (f1, f2) != (s1, s2):
            break
        cur[pg] = cur.get(pg, 0) + 1
        if dbsz:
            commits.append(cur)
            cur = {}
        off += 24 + psz
    return psz, commits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("-s", type=float, default=3, help="seconds of load")
    ap.add_argument("--dir", help="keep the files here (default: a temp dir)")
    a = ap.parse_args()
    root = a.dir or tempfile.mkdtemp(prefix="wal-frames-")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    with open(root + "/post.lua", "w") as f:
        f.write('wrk.method="POST"\nwrk.body=%s\n'
                'wrk.headers["Content-Type"]="application/json"\n'
                % json.dumps(BODY))
    srv, port = serve(a.binary, root)
    wrk = subprocess.Popen(["wrk", "-c64", "-t2", "-d%ds" % (a.s + 5), "-s",
                            root + "/post.lua",
                            "http://127.0.0.1:%d/b" % port],
                           stdout=subprocess.DEVNULL)
    try:
        time.sleep(a.s)
    finally:
        srv.send_signal(signal.SIGKILL)
        srv.wait()
        wrk.kill()
        wrk.wait()
    with open(root + "/hookflow.db-wal", "rb") as f:
        wal = f.read()
    shutil.copy(root + "/hookflow.db", root + "/copy.db")
    shutil.copy(root + "/hookflow.db-wal", root + "/copy.db-wal")
    con = sqlite3.connect(root + "/copy.db")
    names = dict(con.execute("SELECT pageno, name FROM dbstat"))
    psz, commits = frames(wal)
    if not commits:
        raise SystemExit("no commit in the WAL's current cycle: load longer")
    by = {}
    for c in commits:
        for pg, n in c.items():
            name = names.get(pg, "page %d (freed)" % pg)
            by[name] = by.get(name, 0) + n
    total = sum(by.values())
    print("page size %d; %d commits, %d frames: %.1f frames a commit"
          % (psz, len(commits), total, total / len(commits)))
    for name, n in sorted(by.items(), key=lambda x: -x[1]):
        print("  %-28s %6.2f a commit  %4.1f%%"
              % (name, n / len(commits), 100.0 * n / total))
    if not a.dir:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()

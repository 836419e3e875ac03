"""bench.py --pg: hookflow on PostgreSQL (issue 14's benchmark). In one run:
the SQLite single node, then one, two and three nodes (--pg-nodes) sharing one
throwaway local PostgreSQL (tests/e2e/pgcluster.py; root: it runs as the
postgres user; fsync on, synchronous_commit as --sync sets it), each
configuration on fresh databases, every process on this machine's cores.

Per configuration: wrk against every node at once for --duration seconds
(--connections split between the nodes, one wrk thread each; POST of the
1 KiB JSON body to an async workflow whose one step is `return 1`, or with
--pg-step db a db.exec(INSERT) into --data, PostgreSQL for the nodes), then
the wait until every accepted event's run has finished (the sum over nodes
of hookflow_runs_total{status="succeeded"} reaches the sum of
hookflow_events_total{status="202"}). Figures:

  accepts/s         202 answers / wrk's seconds, all nodes together
  finished runs/s   runs finished / seconds from the load's start until the
                    last one finished
  CPU us/run        hookflow: utime+stime of every node (/proc/PID/stat)
                    from the load's start until the drain, per finished run;
                    PostgreSQL: the same for the postmaster and every
                    process below it (its children's, live ones from their
                    stat, exited ones from the postmaster's cutime+cstime)

On a 2-core machine the nodes, PostgreSQL and wrk share the cores: the
figures say what adding a node costs here, not what a cluster of machines
does. Reported, never asserted."""
import json
import os
import sys
import time

import bench
from bench import (CLK_TCK, HOST, TOKEN, Server, finish_wrk, log, metric,
                   scrape, start_wrk, workflow_yaml)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))
import pgcluster  # noqa: E402


def proc_ticks(pid):
    """(utime+stime, cutime+cstime, ppid) of a process in clock ticks, or
    None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12]),
                int(fields[13]) + int(fields[14]), int(fields[1]))
    except (OSError, IndexError, ValueError):
        return None


def tree_cpu_s(root):
    """CPU seconds of root and every live process below it, plus what root
    has reaped (its children's cutime+cstime)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            t = proc_ticks(int(d))
            if t:
                parent[int(d)] = t[2]
    total = 0
    for pid in parent:
        p, inside = pid, False
        while p and p in parent:
            if p == root:
                inside = True
                break
            p = parent[p]
        if inside:
            t = proc_ticks(pid)
            if t:
                total += t[0] + (t[1] if pid == root else 0)
    return total / CLK_TCK


def nodes_cpu_s(nodes):
    total = 0.0
    for n in nodes:
        t = proc_ticks(n.pid)
        if t:
            total += t[0] / CLK_TCK
    return total


def start_nodes(args, root, n, state, data, step):
    """n hookflow serve processes on 127.0.0.1:0 sharing state and data."""
    wf = os.path.join(root, "workflows")
    sc = os.path.join(root, "scripts")
    os.makedirs(wf, exist_ok=True)
    os.makedirs(sc, exist_ok=True)
    with open(os.path.join(wf, "bench-pg.yml"), "w") as f:
        f.write(workflow_yaml("bench-pg", "/bench/pg", step))
    nodes = []
    try:
        for i in range(n):
            argv = [args.hookflow, "serve", "--listen", HOST + ":0",
                    "--workflows", wf, "--scripts", sc, "--state", state,
                    "--data", data, "--admin-token", TOKEN,
                    "--sync", args.runs_sync]
            if args.workers:
                argv += ["--workers", str(args.workers)]
            if args.has_node_flag:
                argv += ["--node", "bench%d" % (i + 1)]
            nodes.append(Server("node%d" % (i + 1), argv, cwd=root).start())
    except Exception:
        for s in nodes:
            s.stop()
        raise
    return nodes


def totals(nodes):
    accepted = finished = failed = 0.0
    for s in nodes:
        m = scrape(s)
        accepted += metric(m, "hookflow_events_total", status="202")
        finished += metric(m, "hookflow_runs_total", status="succeeded")
        failed += metric(m, "hookflow_runs_total", status="failed")
    return accepted, finished, failed


def measure(args, script, label, nodes, pg_root):
    """One configuration under load; the figures of the docstring."""
    time.sleep(0.5)
    a0, f0, _ = totals(nodes)
    cpu0 = nodes_cpu_s(nodes)
    pg0 = tree_cpu_s(pg_root) if pg_root else None
    conns = max(args.connections // len(nodes), 2)
    sub = type("A", (), {"connections": conns, "threads": 1})
    t0 = time.monotonic()
    wrks = [start_wrk(s.url("/bench/pg"), script, sub, args.duration)
            for s in nodes]
    results = [finish_wrk(p, False) for p in wrks]
    t_load = time.monotonic()
    deadline = t_load + args.drain_timeout
    while True:
        accepted, finished, failed = totals(nodes)
        if finished + failed >= accepted or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    t_end = time.monotonic()
    cpu = nodes_cpu_s(nodes) - cpu0
    pg_cpu = (tree_cpu_s(pg_root) - pg0) if pg_root else None
    died = [s.died() for s in nodes if s.died()]
    if died:
        raise RuntimeError("; ".join(died))
    acc, fin = accepted - a0, finished - f0
    secs = max(r["seconds"] or args.duration for r in results)
    return {
        "config": label, "nodes": len(nodes),
        "accepted_202": int(acc),
        "non_2xx": sum(r["non_2xx_3xx"] for r in results),
        "socket_errors": sum(sum(r["socket_errors"].values())
                             for r in results),
        "accepts_per_s": round(acc / secs, 1),
        "finished_runs": int(fin), "failed_runs": int(failed),
        "drained": finished + failed >= accepted,
        "drain_s_after_load": round(t_end - t_load, 2),
        "runs_per_s": round(fin / (t_end - t0), 1) if fin else None,
        "p99_ms": max((r["p99_ms"] or 0) for r in results),
        "cpu_us_per_run_hookflow": round(cpu * 1e6 / fin, 1) if fin else None,
        "cpu_us_per_run_postgres": (round(pg_cpu * 1e6 / fin, 1)
                                    if fin and pg_cpu is not None else None),
    }


def step_lua(args):
    if args.pg_step == "db":
        return 'db.exec("INSERT INTO t(v) VALUES (?)", event.body.n)'
    return "return 1"


def config_sqlite(args, script):
    root = os.path.join(args.tmp, "pg-sqlite")
    os.makedirs(root, exist_ok=True)
    data = os.path.join(root, "data.db")
    if args.pg_step == "db":
        import sqlite3
        con = sqlite3.connect(data)
        con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)")
        con.commit()
        con.close()
    nodes = start_nodes(args, root, 1, os.path.join(root, "hookflow.db"),
                        data, step_lua(args))
    try:
        return measure(args, script, "SQLite, 1 node", nodes, None)
    finally:
        for s in nodes:
            s.stop()


def config_pg(args, script, pg, n):
    root = os.path.join(args.tmp, "pg-%d" % n)
    os.makedirs(root, exist_ok=True)
    state = pg.url("bench_state_%d" % n)
    data = pg.url("bench_data_%d" % n)
    if args.pg_step == "db":
        pg.psql("CREATE TABLE t(id BIGSERIAL PRIMARY KEY, v BIGINT)",
                db="bench_data_%d" % n)
    nodes = start_nodes(args, root, n, state, data, step_lua(args))
    try:
        return measure(args, script, "PostgreSQL, %d node%s" % (
            n, "s" if n > 1 else ""), nodes, pg.proc.pid)
    finally:
        for s in nodes:
            s.stop()


def print_table(rows):
    cols = [("config", "configuration", None),
            ("accepts_per_s", "accepts/s", 0),
            ("runs_per_s", "finished runs/s", 0),
            ("cpu_us_per_run_hookflow", "CPU us/run hookflow", 1),
            ("cpu_us_per_run_postgres", "CPU us/run PostgreSQL", 1),
            ("p99_ms", "p99 ms", 2), ("non_2xx", "non-2xx", 0),
            ("drain_s_after_load", "drain s", 2)]
    lines = [[c[1] for c in cols]]
    for r in rows:
        lines.append([bench.fmt(r.get(k), nd) if nd is not None
                      else str(r.get(k)) for k, _, nd in cols])
    w = [max(len(l[i]) for l in lines) for i in range(len(cols))]
    for i, l in enumerate(lines):
        print("  ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j])
                        for j, c in enumerate(l)))
        if i == 0:
            print("  ".join("-" * x for x in w))


def run(args, script):
    """The --pg benchmark; returns the process's exit status."""
    why = pgcluster.available()
    if why:
        sys.exit("bench: --pg: " + why)
    args.has_node_flag = "--node" in bench.serve_help(args.hookflow)
    counts = [int(x) for x in args.pg_nodes.split(",") if x.strip()]
    if not args.has_node_flag and any(n > 1 for n in counts):
        log("this build's serve has no --node: one node per database only")
        counts = [n for n in counts if n == 1]
    rows, problems = [], []
    try:
        rows.append(config_sqlite(args, script))
    except Exception as e:
        problems.append("SQLite: %s" % e)
    pg = pgcluster.PgCluster(settings={
        "fsync": "on", "full_page_writes": "on", "shared_buffers": "128MB",
        "max_connections": "300"})
    try:
        pg.start()
        for n in counts:
            log("PostgreSQL, %d node(s)" % n)
            try:
                rows.append(config_pg(args, script, pg, n))
            except Exception as e:
                problems.append("%d node(s): %s" % (n, e))
    finally:
        pg.stop()
    for r in rows:
        if r["non_2xx"] or r["socket_errors"]:
            log("%s: %d non-2xx, %d socket errors" % (
                r["config"], r["non_2xx"], r["socket_errors"]))
        if not r["drained"]:
            problems.append("%s: runs did not finish within %.0fs"
                            % (r["config"], args.drain_timeout))
    print()
    print("hookflow on PostgreSQL: %ds of wrk per configuration, %d "
          "connections in all, step %s, --sync %s, %d CPUs (nodes, "
          "PostgreSQL and wrk share them)" % (
              args.duration, args.connections, args.pg_step, args.runs_sync,
              os.cpu_count()))
    print_table(rows)
    if problems:
        print("\nPROBLEMS:\n  " + "\n  ".join(problems))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"pg": rows, "problems": problems}, f, indent=2)
            f.write("\n")
    return 1 if problems else 0

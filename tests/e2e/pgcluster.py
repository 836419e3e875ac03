"""A throwaway PostgreSQL server for the tests: initdb into a temporary
directory as the `postgres` user, started on 127.0.0.1 and a Unix socket in
that directory, with fsync off (the tests kill hookflow nodes, never
PostgreSQL), stopped by its PID. Standard library only; every wait bounded.

    with PgCluster() as pg:
        url = pg.url("hookflow_test")   # creates the database
"""
import contextlib
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = pathlib.Path(os.environ.get("HF_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available():
    """Why a cluster cannot be started here, or None when it can."""
    if not (PG_BIN / "postgres").exists():
        return f"no PostgreSQL server at {PG_BIN} (apt-get install postgresql)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no 'postgres' user"
    if os.geteuid() != 0:
        return "starting a cluster as the postgres user needs root"
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def refused_port():
    """A port on 127.0.0.1 that refuses every connection while the block
    runs: bound and never listening, so no other process (another test's
    server on port 0) can take it between choosing and connecting, as it
    can a port free_port() gave back."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


class PgCluster:
    def __init__(self, listen="127.0.0.1", port=None, hba=(),
                 settings=None, prefix="hf-pg-"):
        """listen: listen_addresses; hba: more client networks (CIDRs)
        let in without a password, beside initdb's local ones; settings:
        server settings over the defaults below (the benchmark: fsync);
        prefix: of its temporary directory's name."""
        self.listen = listen
        self.hba = list(hba)
        self.settings = {"fsync": "off", "full_page_writes": "off",
                         "max_connections": "200", "shared_buffers": "32MB",
                         **(settings or {})}
        self.fixed_port = port is not None
        self.port = port or free_port()
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
        self.data = self.dir / "data"
        self.proc = None
        self.log = self.dir / "postgres.log"

    def _as_postgres(self):
        pw = pwd.getpwnam("postgres")
        return {"user": pw.pw_uid, "group": pw.pw_gid}

    def start(self):
        why = available()
        if why:
            raise RuntimeError(why)
        pw = pwd.getpwnam("postgres")
        os.chmod(self.dir, 0o755)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        subprocess.run([str(PG_BIN / "initdb"), "-D", str(self.data),
                        "--auth=trust", "-U", "postgres", "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True,
                       cwd=self.dir, timeout=120, **self._as_postgres())
        with open(self.data / "pg_hba.conf", "a") as f:
            for cidr in self.hba:
                f.write(f"host all all {cidr} trust\n")
        # a port free_port() gave back may be taken by another test's server
        # before PostgreSQL binds it: then choose another, a bounded number
        # of times
        for attempt in range(5):
            try:
                return self._run()
            except RuntimeError:
                taken = "Address already in use" in self.log.read_text(
                    errors="replace")
                if self.fixed_port or not taken or attempt == 4:
                    raise
                self.port = free_port()

    def _run(self):
        pw = pwd.getpwnam("postgres")
        logf = open(self.log, "wb")
        os.chown(self.log, pw.pw_uid, pw.pw_gid)
        self.proc = subprocess.Popen(
            [str(PG_BIN / "postgres"), "-D", str(self.data),
             "-p", str(self.port), "-c", f"listen_addresses={self.listen}",
             "-c", f"unix_socket_directories={self.dir}",
             *(a for k, v in self.settings.items()
               for a in ("-c", f"{k}={v}"))],
            stdout=logf, stderr=subprocess.STDOUT, cwd=self.dir,
            **self._as_postgres())
        logf.close()
        deadline = time.monotonic() + 60
        while True:
            r = subprocess.run([str(PG_BIN / "pg_isready"), "-h", str(self.dir),
                                "-p", str(self.port)], capture_output=True)
            if r.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start:\n" +
                                   self.log.read_text(errors="replace")[-2000:])
            time.sleep(0.1)
        return self

    def psql(self, sql, db="postgres"):
        """Runs sql with psql; returns its output (tuples only, unaligned)."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", str(self.dir), "-p", str(self.port),
                            "-U", "postgres", "-d", db, "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout

    def create_db(self, name):
        self.psql(f'DROP DATABASE IF EXISTS "{name}"')
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def url(self, db, host=None):
        """A postgres:// URI for a new, empty database named db."""
        self.create_db(db)
        return f"postgres://postgres@{host or self.listen}:{self.port}/{db}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

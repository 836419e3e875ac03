"""Runs a unit test binary against a throwaway PostgreSQL server: starts a
cluster (tests/e2e/pgcluster.py), creates a database, runs the binary with
HF_PG_URL set to it, stops the cluster by its PID. Not skipped when
PostgreSQL is missing: it fails, saying why (CI installs it with
.ci/deps --test).

    python3 tests/unit/pg_unit.py BINARY
"""
import os
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "e2e"))
import pgcluster  # noqa: E402


def main():
    why = pgcluster.available()
    if why:
        print(f"pg_unit: cannot start PostgreSQL: {why}", file=sys.stderr)
        return 1
    with pgcluster.PgCluster() as pg:
        env = dict(os.environ, HF_PG_URL=pg.url("hf_unit"))
        return subprocess.run([sys.argv[1]], env=env, timeout=240).returncode


if __name__ == "__main__":
    sys.exit(main())

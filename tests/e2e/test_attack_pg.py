"""Attacks on what runs on PostgreSQL only (CONTRACT §6, §7, §8): the
shared flow keys of debounce and throttle (a key of megabytes must not blow
up the store), and db.* over `--data postgres://` (`?` translated to `$n`
past strings, comments and identifiers; too many or too few arguments;
NaN, infinities, huge integers and binary values). Each attack asserts a
clear error in the run or a correct answer, the server alive after, nothing
acknowledged lost. Runs in the e2e-pg suite (HF_TEST_STATE=postgres); the
db.* tests need only a PostgreSQL server. No timing is asserted."""
import json
import os
import subprocess
import textwrap

import pytest

import pgcluster
from conftest import BIN, PG_MODE, pg_cluster, wait_for

pytestmark = pytest.mark.skipif(pgcluster.available() is not None,
                                reason=str(pgcluster.available()))

ENDS = ("succeeded", "failed", "cancelled")


def keyed(name, kind):
    flow = ("debounce: { key: event.body.k, period: 1h }" if kind == "debounce"
            else "throttle: { key: event.body.k, limit: 1, period: 1h }")
    return f"""
name: {name}
on:
  webhook: {{ path: /{name} }}
{flow}
steps:
  - id: s
    run: return event.body.n
"""


def settled(srv, rid):
    """The run once it succeeded, ended or waits for its flow control."""
    def get():
        run = srv.run(rid)
        if run["status"] in ENDS or (run["status"] == "waiting" and
                                     run["waiting"]["for"] in ("debounce", "throttle")):
            return run
        return None
    return wait_for(get, 60, what=f"run {rid} to settle")


@pytest.mark.skipif(not PG_MODE, reason="the flow keys are shared on PostgreSQL")
def test_huge_flow_keys(server):
    """debounce.key and throttle.key of hundreds of KiB (not compressible)
    on a PostgreSQL state still debounce and throttle (they were refused by
    the key's index, every run started at once): a burst of one key makes
    one waiting leader, the others debounced into it; of three throttled
    starts one runs, two wait; the server serves after."""
    srv = server(workflows={"deb": keyed("deb", "debounce"),
                            "thr": keyed("thr", "throttle")})
    runs = {}
    for name in ("deb", "thr"):
        key = os.urandom(300 * 1024).hex()
        runs[name] = []
        for n in range(3):
            r = srv.post(f"/{name}", {"k": key, "n": n}, timeout=60)
            assert r.status == 202, (name, r)
            runs[name].append(r.json()["runs"][0])
    deb = [settled(srv, rid) for rid in runs["deb"]]
    assert sorted(r["status"] for r in deb) == ["cancelled", "cancelled",
                                                 "waiting"], deb
    leader = next(r["id"] for r in deb if r["status"] == "waiting")
    assert all(r["error"] == f"debounced into run {leader}"
               for r in deb if r["status"] == "cancelled"), deb
    thr = [settled(srv, rid) for rid in runs["thr"]]
    assert sorted(r["status"] for r in thr) == ["succeeded", "waiting",
                                                 "waiting"], thr
    assert srv.get("/healthz").status == 200
    assert not [l for l in srv.stderr_lines if "index row" in l]
    for rid in [leader] + [r["id"] for r in thr if r["status"] == "waiting"]:
        assert srv.api("POST", f"/api/runs/{rid}/cancel").status == 202
    r = srv.post("/thr", {"k": "small", "n": 9})
    assert r.status == 202, r
    assert srv.wait_run(r.json()["runs"][0], timeout=60)["status"] == "succeeded"

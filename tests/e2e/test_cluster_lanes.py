"""A concurrency lane with max 2 across two nodes whose runs' node dies
(contract §7): node b waits with both of its local slots of the lane taken by
later runs, takes over the dead node's two earlier runs, and runs them first
(a later run waiting on earlier ones elsewhere passes its local slot to an
earlier one), then its own. PostgreSQL mode only (HF_TEST_STATE=postgres);
the nodes are those of test_cluster_pair.py."""
import pytest

import pgcluster
from conftest import wait_for
from test_cluster_pair import held, pair, post, wait_run  # noqa: F401

pytestmark = pytest.mark.skipif(pgcluster.available() is not None,
                                reason=str(pgcluster.available()))


def test_lane_max_two_taken_over(pair):  # noqa: F811
    gate, make = pair
    a, b = make({"held": held(
        gate.url, "concurrency: { key: event.body.lane, max: 2 }")})
    ids = [post(a, "/held", {"lane": "x", "key": k})["runs"][0]
           for k in ("x1", "x2")]
    wait_for(lambda: len(gate.seen("/hold")) == 2, 15, what="x1, x2 on a")
    ids += [post(b, "/held", {"lane": "x", "key": k})["runs"][0]
            for k in ("x3", "x4")]
    a.kill()
    gate.release()

    def seen():
        return [(r["query"]["key"], r["query"]["node"],
                 r["query"]["attempt"]) for r in gate.seen("/hold")]
    for run_id in ids:
        try:
            run = wait_run(b, run_id, 30)
        except AssertionError as e:
            states = [b.run(x)["status"] for x in ids]
            raise AssertionError(f"{e}; steps run: {seen()}; x1..x4:"
                                 f" {states}") from None
        assert run["status"] == "succeeded"
    on_b = [s for s in seen() if s[1] == "b"]
    assert sorted(on_b) == [("x1", "b", "2"), ("x2", "b", "2"),
                            ("x3", "b", "1"), ("x4", "b", "1")], seen()
    # The lane's order: x4 waits for two of x1..x3, so it is not among the
    # first two to start on b; the first to start is a taken-over one.
    assert on_b[0][0] in ("x1", "x2") and on_b.index(("x4", "b", "1")) >= 2, \
        seen()

"""End-to-end tests of the outbox's connections (README.md, "Webhooks out":
connections reused): kept-alive connections that the receiver closes while
they are idle, between two waves of deliveries, are noticed and replaced;
every delivery arrives exactly once.

Every wait is bounded; no test asserts a timing."""
import time

from conftest import wait_for

WAVE = """name: wave
on:
  webhook:
    path: /wave
steps:
  - id: main
    run: |
      local ids = {}
      for i = 1, event.body.n do
        ids[i] = webhook.emit(event.body.url, {wave = event.body.wave, i = i})
      end
      return ids
"""


def ids_seen(receiver):
    with receiver.lock:
        return [r["headers"].get("webhook-id") for r in receiver.requests]


def wave(srv, receiver, n, k):
    r = srv.post("/wave", {"url": receiver.url + "/in", "n": n, "wave": k})
    assert r.status == 202, r
    run = srv.wait_run(r.json()["runs"][0], timeout=30)
    assert run["status"] == "succeeded", run
    return run["steps"][0]["output"]


def test_idle_connections_closed_by_the_receiver_are_replaced(server,
                                                              receiver):
    # The receiver keeps connections alive but drops one idle for 0.3s.
    receiver.httpd.RequestHandlerClass.timeout = 0.3
    srv = server(workflows={"wave": WAVE})
    first = wave(srv, receiver, 40, 1)
    wait_for(lambda: set(first) <= set(ids_seen(receiver)), 30,
             what="the first wave delivered")
    time.sleep(1.0)  # every kept connection is now closed by the receiver
    second = wave(srv, receiver, 40, 2)
    wait_for(lambda: set(second) <= set(ids_seen(receiver)), 30,
             what="the second wave delivered")
    # The receiver has them; their outcome commits a moment later.
    for did in first + second:
        d = wait_for(lambda: (lambda d: d if d["status"] != "pending" else
                              None)(srv.api("GET", f"/api/deliveries/{did}")
                                    .json()), 30,
                     what=f"delivery {did} recorded")
        assert d["status"] == "delivered" and d["attempts"] == 1, d
    seen = ids_seen(receiver)
    assert sorted(seen) == sorted(first + second), "each exactly once"

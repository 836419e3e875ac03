"""A run loaded from the disk backlog sees the same `event` as one that ran
from memory: headers, query, a JSON, form or text body, and raw (the loader
keeps headers and query as their stored JSON text, decoded into Lua by the
worker: store_sqlite_query.c, lua_event.c)."""
import http.client
import json
import urllib.parse

from conftest import data_tables
from flowutil import metric
from test_backlog import busy, q, wait_all_done, wf

FLOW = wf("ev", "/ev", f"""\
  - id: look
    run: |
      db.exec("INSERT INTO log(n, v) VALUES (?, ?)", tonumber(event.query.n),
              json.encode({{query = event.query,
                            tag = event.headers["x-tag"],
                            ct = event.headers["content-type"],
                            body = event.body or json.null,
                            raw = event.raw}}))
      {busy(0.05)}
      return 1
""")

KINDS = [
    ("application/json", lambda i: json.dumps({"n": i, "a": [1, None, {}]}),
     lambda i: {"n": i, "a": [1, None, {}]}),
    ("application/x-www-form-urlencoded",
     lambda i: urllib.parse.urlencode({"n": str(i), "x": "y z"}),
     lambda i: {"n": str(i), "x": "y z"}),
    ("text/plain", lambda i: f"plain {i}", lambda i: None),
]
N = 24


def test_backlog_runs_see_the_same_event(server):
    srv = server(workflows={"ev": FLOW}, start=False,
                 args=["--max-queue", "2", "--workers", "1"])
    data_tables(srv.data, "CREATE TABLE log(n INTEGER PRIMARY KEY, v TEXT)")
    srv.start()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    for i in range(N):
        ct, body, _ = KINDS[i % len(KINDS)]
        conn.request("POST", f"/ev?n={i}&w=%C3%A9", body(i),
                     {"Content-Type": ct, "X-Tag": f"t{i}"})
        r = conn.getresponse()
        r.read()
        assert r.status == 202, r.status
    conn.close()
    # most of them waited on disk
    assert metric(srv, "hookflow_backlog") > 0
    wait_all_done(srv, N)
    rows = dict(q(srv.data, "SELECT n, v FROM log"))
    assert sorted(rows) == list(range(N))
    for i in range(N):
        ct, body, decoded = KINDS[i % len(KINDS)]
        v = json.loads(rows[i])
        assert v["query"] == {"n": str(i), "w": "\u00e9"}, v
        assert v["tag"] == f"t{i}" and v["ct"] == ct, v
        assert v["body"] == decoded(i), v
        assert v["raw"] == body(i), v

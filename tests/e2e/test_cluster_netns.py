"""Three nodes over one PostgreSQL, each in its own network namespace
(contract §7; issue 14's three-node test). A bridge in the root namespace
carries the test's PostgreSQL and the receiver of the outbound webhooks; each
node listens on its own address behind a veth pair. A bounded load (16 lanes
of 25 events, in bursts, each event POSTed to one node and to the next when a
node does not answer) runs while node1 is killed with SIGKILL twice
(restarted at once the first time, after the others saw it dead the second)
and node2's link is down until node3 sees it dead and a second more (longer
than --lease 2s), then up again.

Each event (dedupe key = its id, so a retry to another node is answered as a
duplicate) starts two runs: `laned` (concurrency key = the event's lane, max
1) and `free`, whose last step emits a webhook. Every step records into the
shared --data database its run, step, run.attempt, node (HF_TEST_NODE and
inet_client_addr(): the namespace's address) and start and end time
(clock_timestamp(), one clock for all nodes). Afterwards:

- every 2xx-acknowledged event has its two runs; nothing is left queued or
  pending; every run succeeded, and the state holds runs for stored events
  only;
- no step ran twice with the same run.attempt (every repeat is marked
  run.attempt > 1), and each committed step output is the execution of
  that step with the highest attempt (a reaped holder's late write lost);
- no two nodes ran the same run at once: executions of one run on different
  nodes do not overlap in time, unless the earlier one is an execution that
  was taken away (a lower attempt than the other, not the committed one) on
  the node that was cut off: it may go on running while cut off, but its
  result is refused;
- each RUN's steps name the node that ran their committed execution; each
  node's /metrics says which it is, and GET /api/nodes shows all three
  alive at the end;
- lanes kept order: no execution of a lane's run k+1 began before its run
  k's committed last step ended;
- each `free` run made exactly one delivery (its step committed once), which
  the receiver got at least once, every time under that delivery's
  webhook-id (a repeat is recognisable as one).

Issue 15's flow controls (contract §6) run through the same faults, on all
three nodes (steps record into a `flowlog` table of --data):

- parked runs: a `sleeper` event (3 s `sleep:` between two recording steps)
  every 0.6 s from the start until after the cut, sent like the load: every
  one has one run that succeeded once (no history), each step executed once
  per run.attempt; at least one slept through the SIGKILL of the node that
  parked it (printed: which fault, who finished it);
- one schedule fire per cluster: `tick` fires every second
  (HOOKFLOW_TEST_CRON_SECONDS=1, catch_up 0) on every node all along; one
  stored run per fire time (the fire time of its event), each under its
  dedupe key `schedule:0:AT` and every such key with its run; at least one
  fire between node1's second kill and its restart and during the cut
  (printed: seconds without a fire, fires by node);
- debounce shared by the nodes: a burst of 6 events of one key, each to
  the next node, before the first kill, after each restart and after the
  cut (each sent once the one before is acknowledged, and every one
  decided before the fault sequence goes on, so that no fault splits a
  burst): one run per burst, its `events` all of them in arrival order,
  the others cancelled "debounced into" it;
- throttle shared by the nodes (limit 2 per 1500 ms, one key, a `thr`
  event every 0.6 s: a backlog, parked runs, across the faults): every run
  succeeded, none dropped, and no `period` holds more than `limit` first
  starts (run.attempt 1) as the throttle let them through (the step's
  `started_at`), whichever node made them: a decision, not a duration. A
  takeover repeat (run.attempt > 1) is not counted. The reservations the
  nodes committed (a trigger on the state's throttle table) are printed.

Needs root (namespaces, the postgres user). About 40 s on 2 cores."""
import collections
import datetime
import http.client
import json
import random
import re
import threading
import time

import pytest

import pgcluster
from clusterlib import Gate, Net, Node, netns_unavailable, \
    sweep_leftovers, wait_node_alive, write_tree
from conftest import wait_for

_why = pgcluster.available() or netns_unavailable()
pytestmark = pytest.mark.skipif(_why is not None, reason=str(_why))

LANES = 16
BURSTS = 5          # per lane, BURST_SPACING_S apart
BURST = 5           # events per burst, each sent once the one before is
BURST_SPACING_S = 4.0
LEASE = "2s"
PORT = 8080         # in each node's own namespace
SEND_TIMEOUT_S = 2.0

STEPLOG_LUA = """\
    -- Records one execution of a step in the shared --data database.
    local M = {}
    function M.record(step, pause)
      local s = db.one("INSERT INTO started(run_id, step, attempt, node, t0)"
        .. " VALUES (?, ?, ?, ?, clock_timestamp()) RETURNING t0::text AS t0",
        run.id, step, run.attempt, env("HF_TEST_NODE"))
      db.exec("SELECT pg_sleep(" .. pause .. ")")
      db.exec("INSERT INTO steplog(run_id, workflow, step, attempt, node,"
        .. " addr, lane, seq, t0, t1) VALUES (?, ?, ?, ?, ?,"
        .. " inet_client_addr(), ?, ?, ?::timestamptz, clock_timestamp())",
        run.id, run.workflow, step, run.attempt, env("HF_TEST_NODE"),
        event.body.lane, event.body.seq, s.t0)
      return {node = env("HF_TEST_NODE"), attempt = run.attempt}
    end
    -- Records one execution of a flow-control workflow's step (info: the
    -- event's id, the burst's key or the fire time).
    function M.flow(step, info)
      db.exec("INSERT INTO flowlog(run_id, workflow, step, attempt, node,"
        .. " info, t0) VALUES (?, ?, ?, ?, ?, ?, clock_timestamp())",
        run.id, run.workflow, step, run.attempt, env("HF_TEST_NODE"),
        tostring(info))
      return {node = env("HF_TEST_NODE"), attempt = run.attempt}
    end
    return M
    """

STEPLOG_SQL = ("CREATE TABLE steplog(run_id text, workflow text, step text,"
               " attempt int, node text, addr inet, lane text, seq int,"
               " t0 timestamptz, t1 timestamptz);"
               " CREATE TABLE started(run_id text, step text, attempt int,"
               " node text, t0 timestamptz);"
               " CREATE TABLE flowlog(run_id text, workflow text, step text,"
               " attempt int, node text, info text, t0 timestamptz)")

# Every throttle reservation the nodes commit (the engine deletes a row once
# a period old): a trigger on the state's throttle table, added once the
# first node made it.
THROTTLE_LOG_SQL = (
    "CREATE TABLE throttle_log(key text, at bigint);"
    " CREATE FUNCTION throttle_log() RETURNS trigger LANGUAGE plpgsql AS"
    " $$BEGIN INSERT INTO throttle_log VALUES (NEW.key, NEW.at);"
    " RETURN NEW; END$$;"
    " CREATE TRIGGER throttle_log AFTER INSERT ON throttle FOR EACH ROW"
    " EXECUTE FUNCTION throttle_log()")

FLOWS_UNTIL_S = 15.0  # sleeper and throttle events from the start until then
FLOW_SPACING_S = 0.3  # one event every, alternately sleeper and throttle
THR_LIMIT, THR_PERIOD_MS = 2, 1500
DEB_BURST = 6

# Steps a node has begun in the last second and not yet ended.
BUSY_SQL = ("SELECT count(*) FROM started s WHERE node = '{}' AND t0 >"
            " clock_timestamp() - interval '1 s' AND NOT EXISTS (SELECT 1"
            " FROM steplog l WHERE l.run_id = s.run_id AND l.step = s.step"
            " AND l.attempt = s.attempt)")


def iso_ms(text):
    """An ISO 8601 UTC time of the API (…Z) in ms since the epoch."""
    import datetime
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) \
        .timestamp() * 1000


def workflows(hook_url):
    return {
        "laned": """\
            name: laned
            on:
              webhook:
                path: /ev
                dedupe: event.body.id
            concurrency: { key: event.body.lane, max: 1 }
            steps:
              - id: a
                run: return require("steplog").record("a", 0.1)
              - id: b
                run: return require("steplog").record("b", 0.05)
            """,
        "free": f"""\
            name: free
            on:
              webhook:
                path: /ev
                dedupe: event.body.id
            steps:
              - id: a
                run: return require("steplog").record("a", 0.05)
              - id: b
                run: |
                  local r = require("steplog").record("b", 0.03)
                  webhook.emit("{hook_url}", {{run = run.id,
                    lane = event.body.lane, seq = event.body.seq}},
                    {{attempts = 30, backoff = "200ms"}})
                  return r
            """,
        # A parked run: sleeps past a fault, then records once more.
        "sleeper": """\
            name: sleeper
            on:
              webhook: { path: /sleep, dedupe: event.body.id }
            steps:
              - id: first
                run: return require("steplog").flow("first", event.body.id)
              - id: nap
                sleep: 3s
              - id: after
                run: return require("steplog").flow("after", event.body.id)
            """,
        "thr": f"""\
            name: thr
            on:
              webhook: {{ path: /thr, dedupe: event.body.id }}
            throttle: {{ key: "'shared'", limit: {THR_LIMIT},
                        period: {THR_PERIOD_MS}ms }}
            steps:
              - id: call
                run: return require("steplog").flow("call", event.body.id)
            """,
        "deb": """\
            name: deb
            on:
              webhook: { path: /deb, dedupe: event.body.id }
            debounce: { key: event.body.k, period: 2s }
            steps:
              - id: collect
                run: |
                  local ns = {}
                  for i, e in ipairs(events) do ns[i] = e.body.n end
                  require("steplog").flow("collect", event.body.k)
                  return { ns = ns }
            """,
        # Per second (HOOKFLOW_TEST_CRON_SECONDS=1: a seconds field).
        "tick": """\
            name: tick
            on:
              schedule:
                - cron: "* * * * * *"
                  catch_up: 0
            steps:
              - id: s
                run: return require("steplog").flow("s", event.schedule.at)
            """}


@pytest.fixture
def cluster(tmp_path):
    """The network, PostgreSQL on the bridge, the receiver, three nodes
    (not started); everything removed afterwards, whatever happened, and
    first what an earlier run killed from outside left behind."""
    sweep_leftovers()
    net = Net(3)
    pg = gate = None
    nodes = []
    try:
        net.up()
        pg = pgcluster.PgCluster(listen=net.gw, hba=[net.cidr],
                                  prefix=f"{net.tag}-pg-")
        pg.start()
        state = pg.url("hf_state", host=net.gw)
        data = pg.url("hf_data", host=net.gw)
        pg.psql(STEPLOG_SQL, db="hf_data")
        gate = Gate(net.gw)
        wf, sc = write_tree(tmp_path, workflows(gate.url + "/hook"),
                            {"steplog.lua": STEPLOG_LUA})
        for i in range(3):
            nodes.append(Node(f"node{i + 1}", state, data, wf, sc,
                              host=net.addr[i], port=PORT, netns=net.ns[i],
                              lease=LEASE,
                              env={"HOOKFLOW_TEST_CRON_SECONDS": "1"}))
        yield net, pg, gate, nodes
    finally:
        for n in nodes:
            n.kill()
        if gate:
            gate.close()
        if pg:
            pg.stop()
        net.close()


class Load:
    """LANES threads, one per lane: bursts of BURST events, each event
    POSTed until a node acknowledges it (202, or 200 duplicate: the node it
    went to before stored it), the next one only then (so the lane's order
    is its arrival order). A lane gives up at the deadline, and then sends
    nothing more."""

    def __init__(self, nodes, deadline_s):
        self.nodes = nodes
        self.acked = {}            # event key -> (event id, runs or None)
        self.unexpected = []       # answers that are neither 2xx nor 503
        self.gave_up = []
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.deadline = self.t0 + deadline_s
        self.threads = [threading.Thread(target=self.lane, args=(i,),
                                         daemon=True) for i in range(LANES)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self, timeout):
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def lane(self, i):
        rnd = random.Random(i)
        offset = rnd.uniform(0, BURST_SPACING_S)
        for b in range(BURSTS):
            wait = self.t0 + offset + b * BURST_SPACING_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            for k in range(BURST):
                seq = b * BURST + k
                ev = {"id": f"L{i}-{seq}", "lane": f"L{i}", "seq": seq,
                      "pad": "x" * rnd.randrange(200)}
                if not self.send(ev, i + seq):
                    with self.lock:
                        self.gave_up.append(ev["id"])
                    return

    def send(self, ev, first, path="/ev", acked=None):
        acked = self.acked if acked is None else acked
        n = first
        while time.monotonic() < self.deadline:
            node = self.nodes[n % len(self.nodes)]
            n += 1
            if not node.alive() or not node.port:
                time.sleep(0.02)
                continue
            try:
                st, _, text = node.request("POST", path, ev,
                                           timeout=SEND_TIMEOUT_S)
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
                continue
            if st == 503:
                time.sleep(0.1)
                continue
            doc = json.loads(text) if text.startswith("{") else {}
            with self.lock:
                if st == 202:
                    acked[ev["id"]] = (doc["event"], doc["runs"])
                    return True
                if st == 200 and doc.get("duplicate"):
                    acked[ev["id"]] = (doc["event"], None)
                    return True
                self.unexpected.append((ev["id"], node.name, st, text[:200]))
            time.sleep(0.1)
        return False


class Flows:
    """One thread: from the start until FLOWS_UNTIL_S, every FLOW_SPACING_S
    a sleeper event and a throttle event by turns, each to the next node
    (Load.send: on to the next one while a node does not answer). The
    debounce bursts are sent by the fault sequence, between faults
    (burst())."""

    def __init__(self, load):
        self.load = load
        self.acked = {}            # S<i>, T<i>, D<key><n> -> (event, runs)
        self.bursts = []           # (key, [event keys in arrival order])
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def loop(self):
        i = 0
        while True:
            at = self.load.t0 + 0.3 + i * FLOW_SPACING_S
            if at > self.load.t0 + FLOWS_UNTIL_S:
                return
            if at > time.monotonic():
                time.sleep(at - time.monotonic())
            kind, path = ("S", "/sleep") if i % 2 == 0 else ("T", "/thr")
            ev = {"id": f"{kind}{i // 2}"}
            if not self.load.send(ev, i, path, self.acked):
                return
            i += 1

    def burst(self, key, pg, marks):
        """DEB_BURST events of one key, each to the next node, each sent
        once the one before is acknowledged; then waits (bounded) until
        every one is decided (led, joined or done), so that no fault comes
        between the burst's events and their decisions."""
        keys = []
        for n in range(DEB_BURST):
            ev = {"id": f"D{key}{n}", "k": key, "n": n}
            if self.load.send(ev, n, "/deb", self.acked):
                keys.append(ev["id"])
        self.bursts.append((key, keys))
        if not keys:
            return
        ids = ",".join(f"'{self.acked[k][0]}'" for k in keys)
        try:
            wait_for(lambda: int(pg.psql(
                f"SELECT count(*) FROM runs WHERE event_id IN ({ids}) AND"
                " status IN ('queued', 'running')", db="hf_state")) == 0,
                10, 0.05)
        except AssertionError:
            marks.setdefault("undecided bursts", []).append(key)


def test_three_nodes_sigkill_and_partition(cluster):
    net, pg, gate, nodes = cluster
    n3 = nodes[2]
    for n in nodes:
        n.start()
    wait_node_alive(n3, "node1", True, 10)
    wait_node_alive(n3, "node2", True, 10)
    pg.psql(THROTTLE_LOG_SQL, db="hf_state")

    load_s = BURSTS * BURST_SPACING_S + BURST_SPACING_S
    load = Load(nodes, load_s + 30).start()
    flows = Flows(load).start()
    t0 = time.monotonic()
    marks = {}

    def at(s):
        left = t0 + s - time.monotonic()
        if left > 0:
            time.sleep(left)

    def when_busy(node):
        """Waits (bounded) until node is in the middle of a step."""
        try:
            wait_for(lambda: int(pg.psql(BUSY_SQL.format(node.name),
                                         db="hf_data")), 5, 0.02)
        except AssertionError:
            marks.setdefault("idle", []).append(node.name)

    try:
        faults(pg, net, nodes, at, when_busy, marks, flows)
        at(load_s)
        load.join(30)  # the lanes still retrying their last burst
        flows.thread.join(30)
    finally:
        load.deadline = 0  # whatever happened, the lanes stop
        load.join(SEND_TIMEOUT_S + 5)
        flows.thread.join(SEND_TIMEOUT_S + 5)
    assert not load.unexpected, load.unexpected[:10]
    assert not load.gave_up, f"events never acknowledged: {load.gave_up[:10]}"
    assert len(load.acked) == LANES * BURSTS * BURST

    # Everything finished: nothing queued, no run unfinished or parked, no
    # delivery pending (bounded); the schedule goes on firing.
    def settled():
        q = pg.psql("SELECT (SELECT count(*) FROM queue JOIN runs ON"
                    " runs.id = queue.run_id WHERE workflow <> 'tick') +"
                    " (SELECT count(*) FROM runs WHERE status IN"
                    " ('queued', 'running', 'waiting') AND"
                    " workflow <> 'tick') +"
                    " (SELECT count(*) FROM deliveries WHERE status ="
                    " 'pending')", db="hf_state")
        return int(q) == 0
    try:
        wait_for(settled, 60, 0.5, "every run and delivery to finish")
    except AssertionError:
        raise AssertionError(stuck(pg, nodes, marks)) from None
    for n in nodes:
        assert n.alive(), f"{n.name} exited:\n{n.log()}"
        st, _, text = n.request("GET", "/metrics")
        assert st == 200 and f'hookflow_node_info{{node="{n.name}"}} 1' \
            in text, text[:500]
    assert {k: v["alive"] for k, v in n3.nodes().items()} == \
        {"node1": True, "node2": True, "node3": True}

    problems = verify(pg, gate, nodes, net, load)
    problems += verify_flows(pg, nodes, flows, marks)
    assert not problems, summary(problems, marks, nodes)


def faults(pg, net, nodes, at, when_busy, marks, flows):
    """node1 killed twice, node2 cut off, while the load runs; a debounce
    burst before each fault and after the last, never during one."""
    n1, n2, n3 = nodes

    def db_now():
        return float(pg.psql("SELECT extract(epoch FROM clock_timestamp())",
                             db="hf_data"))

    at(0.5)
    flows.burst("A", pg, marks)
    # node1: SIGKILL in the middle of a step, restarted at once.
    at(3)
    when_busy(n1)
    n1.kill()
    marks["kill1"] = db_now()
    n1.start()
    marks["restart1"] = db_now()
    flows.burst("B", pg, marks)
    # node1: SIGKILL again, restarted once node3 has seen it dead (its
    # runs are then the others' to take over).
    at(7)
    when_busy(n1)
    n1.kill()
    marks["kill2"] = db_now()
    wait_node_alive(n3, "node1", False, 15)
    n1.start()
    marks["restart2"] = db_now()
    flows.burst("C", pg, marks)
    # node2: cut off in the middle of a step until node3 has seen it dead,
    # and a second more.
    at(10)
    when_busy(n2)
    net.link(1, False)
    marks["down"] = db_now()
    wait_node_alive(n3, "node2", False, 15)
    time.sleep(1.0)
    net.link(1, True)
    marks["up"] = db_now()
    wait_node_alive(n3, "node2", True, 30)
    flows.burst("D", pg, marks)


def stuck(pg, nodes, marks):
    """What is left unfinished, for a failure's message."""
    runs = pg.psql(
        "SELECT r.id, r.workflow, r.status, r.lane, r.next_step,"
        " r.step_attempt, q.node_id, q.epoch FROM runs r LEFT JOIN queue q"
        " ON q.run_id = r.id WHERE r.status IN ('queued', 'running')"
        " ORDER BY r.seq LIMIT 20", db="hf_state")
    left = pg.psql("SELECT (SELECT count(*) FROM queue), (SELECT count(*)"
                   " FROM runs WHERE status IN ('queued', 'running')),"
                   " (SELECT count(*) FROM deliveries WHERE status ="
                   " 'pending')", db="hf_state")
    known = pg.psql("SELECT id, name, epoch, stopped_at IS NULL FROM nodes",
                    db="hf_state")
    out = [f"not finished after 60s (queue rows|unfinished runs|pending"
           f" deliveries: {left.strip()}; faults at {marks}); the first"
           f" runs left (id|workflow|status|lane|next_step|step_attempt|"
           f"queue node|queue epoch):", runs, f"nodes:\n{known}"]
    for n in nodes:
        out.append(f"{n.name}'s last lines:\n{n.log(8)}")
    return "\n".join(out)


def summary(problems, marks, nodes):
    """The problems by kind (what they say before the first id): how many,
    and the first few of each."""
    kinds = collections.defaultdict(list)
    for p in problems:
        kinds[re.sub(r"[\w-]*\d[\w.-]*", "N", p.split("{")[0])].append(p)
    out = [f"{len(problems)} problems (database clock at the faults:"
           f" {marks}):"]
    for ps in sorted(kinds.values(), key=len, reverse=True):
        out.append(f"{len(ps)} like:")
        out += ["  " + p[:600] for p in ps[:4]]
    out = out[:60]
    for n in nodes:
        out.append(f"{n.name}'s last lines:\n{n.log(6)}")
    return "\n".join(out)


def verify(pg, gate, nodes, net, load):
    """Every check of the docstring; returns the problems found."""
    problems = []
    stats = collections.Counter()
    n3 = nodes[2]
    name_of_addr = {a: n.name for a, n in zip(net.addr, nodes)}
    cut_off = nodes[1].name

    # Runs in the state, by event.
    rows = json.loads(pg.psql(
        "SELECT coalesce(json_agg(json_build_object('id', id, 'event',"
        " event_id, 'workflow', workflow, 'status', status)), '[]')"
        " FROM runs WHERE workflow IN ('laned', 'free')", db="hf_state"))
    by_event = collections.defaultdict(list)
    for r in rows:
        by_event[r["event"]].append(r)
    events = {}
    for key, (event_id, runs) in load.acked.items():
        stored = by_event.get(event_id, [])
        if runs is not None and sorted(runs) != sorted(r["id"] for r in
                                                       stored):
            problems.append(f"event {key} ({event_id}): answered runs {runs},"
                            f" stored {[r['id'] for r in stored]}")
        if sorted(r["workflow"] for r in stored) != ["free", "laned"]:
            problems.append(f"event {key} ({event_id}): runs {stored}")
        events[key] = {r["workflow"]: r["id"] for r in stored}
    acked_ids = {e for e, _ in load.acked.values()}
    for e in by_event:
        if e not in acked_ids:
            problems.append(f"runs of an event nobody acknowledged: {e}")
    for r in rows:
        if r["status"] != "succeeded":
            problems.append(f"run {r['id']} ({r['workflow']}): {r['status']}")

    # Executions recorded by the steps.
    log = json.loads(pg.psql(
        "SELECT coalesce(json_agg(json_build_object('run', run_id, 'wf',"
        " workflow, 'step', step, 'attempt', attempt, 'node', node, 'addr',"
        " host(addr), 'lane', lane, 'seq', seq, 't0', extract(epoch FROM t0),"
        " 't1', extract(epoch FROM t1))), '[]') FROM steplog",
        db="hf_data"))
    by_run = collections.defaultdict(list)
    for x in log:
        by_run[x["run"]].append(x)
        if name_of_addr.get(x["addr"]) != x["node"]:
            problems.append(f"run {x['run']} step {x['step']}: HF_TEST_NODE"
                            f" {x['node']} but connected from {x['addr']}")
    committed = {}  # (run, step) -> the committed execution
    for r in rows:
        run = n3.run(r["id"])
        if run.get("history"):
            problems.append(f"run {r['id']} ended more than once:"
                            f" {run['history']}")
        execs = by_run.get(r["id"], [])
        for st in run["steps"]:
            mine = [x for x in execs if x["step"] == st["id"]]
            attempts = [x["attempt"] for x in mine]
            if len(set(attempts)) != len(attempts):
                problems.append(f"run {r['id']} step {st['id']} ran twice"
                                f" with one run.attempt: {mine}")
            out = st.get("output") or {}
            top = max(mine, key=lambda x: x["attempt"], default=None)
            if not top or out.get("attempt") != top["attempt"] or \
                    out.get("node") != top["node"]:
                problems.append(f"run {r['id']} step {st['id']}: output {out}"
                                f" is not its last execution {top}")
                continue
            committed[(r["id"], st["id"])] = top
            if st.get("node") != top["node"]:
                problems.append(f"run {r['id']} step {st['id']}: node"
                                f" {st.get('node')!r}, ran on {top['node']}")

    # No two nodes ran one run at once, except a cut-off holder whose
    # execution was taken away (its result is not the committed one).
    for run_id, execs in by_run.items():
        def taken_away(x):
            return x["node"] == cut_off and \
                committed.get((run_id, x["step"])) is not x
        execs = sorted(execs, key=lambda x: x["t0"])
        for i, a in enumerate(execs):
            for b in execs[i + 1:]:
                if b["t0"] >= a["t1"] or a["node"] == b["node"]:
                    continue
                if not (taken_away(a) or taken_away(b)):
                    problems.append(f"run {run_id} ran on two nodes at once:"
                                    f" {a} and {b}")
                else:
                    stats["overlaps of a cut-off step"] += 1

    # Lanes kept order.
    lanes = collections.defaultdict(dict)
    for key, wfs in events.items():
        lane, seq = key[1:].split("-")
        lanes[lane][int(seq)] = wfs.get("laned")
    for lane, runs in lanes.items():
        for seq in sorted(runs):
            if seq + 1 not in runs:
                continue
            prev = committed.get((runs[seq], "b"))
            later = by_run.get(runs[seq + 1], [])
            if prev and later and min(x["t0"] for x in later) < prev["t1"]:
                problems.append(f"lane L{lane}: run of seq {seq + 1} began"
                                f" before seq {seq} ended")

    # One delivery per `free` run, received at least once; repeats marked.
    dels = json.loads(pg.psql(
        "SELECT coalesce(json_agg(json_build_object('id', id, 'run', run_id,"
        " 'status', status, 'attempts', attempts)), '[]') FROM deliveries",
        db="hf_state"))
    got = collections.Counter(r["headers"].get("webhook-id")
                              for r in gate.seen("/hook"))
    per_run = collections.defaultdict(list)
    for d in dels:
        per_run[d["run"]].append(d)
    for r in rows:
        if r["workflow"] != "free":
            continue
        ds = per_run.get(r["id"], [])
        if len(ds) != 1:
            problems.append(f"run {r['id']}: {len(ds)} deliveries {ds}")
            continue
        d = ds[0]
        if d["status"] != "delivered" or not got[d["id"]]:
            problems.append(f"delivery {d} received {got[d['id']]} times")
    known = {d["id"] for d in dels}
    for wid in got:
        if wid not in known:
            problems.append(f"received a delivery the state does not have:"
                            f" {wid}")
    stats["executions"] = len(log)
    stats["repeats (run.attempt > 1)"] = sum(x["attempt"] > 1 for x in log)
    stats["executions not committed"] = len(log) - len(committed)
    stats["deliveries received more than once"] = sum(
        1 for n in got.values() if n > 1)
    print("what the faults did:", dict(stats))
    return problems


def q_json(pg, db, sql):
    """Rows of sql as a list of dicts."""
    return json.loads(pg.psql(f"SELECT coalesce(json_agg(t), '[]') FROM"
                              f" ({sql}) t", db=db))


def verify_flows(pg, nodes, flows, marks):
    """The flow controls' checks of the docstring; returns the problems
    found, prints what the faults did to them."""
    problems = []
    stats = collections.Counter()
    n3 = nodes[2]
    runs = q_json(pg, "hf_state",
                  "SELECT id, event_id AS event, workflow, status, error"
                  " FROM runs WHERE workflow IN ('sleeper', 'thr', 'deb')")
    by_event = collections.defaultdict(list)
    for r in runs:
        by_event[r["event"]].append(r)
    log = q_json(pg, "hf_data",
                 "SELECT run_id AS run, workflow, step, attempt, node, info,"
                 " extract(epoch FROM t0) AS t0 FROM flowlog")
    execs = collections.defaultdict(list)
    for x in log:
        execs[(x["run"], x["step"])].append(x)
    stats["repeats (run.attempt > 1)"] = sum(x["attempt"] > 1 for x in log)

    def once(run_id, step):
        """The step's executions (one per run.attempt), or a problem."""
        mine = execs.get((run_id, step), [])
        attempts = [x["attempt"] for x in mine]
        if not mine or len(set(attempts)) != len(attempts):
            problems.append(f"run {run_id} step {step}: executions {mine}")
        return sorted(mine, key=lambda x: x["attempt"])

    def one_run(key, workflow):
        event, _ = flows.acked[key]
        rs = by_event.get(event, [])
        if len(rs) != 1 or rs[0]["workflow"] != workflow:
            problems.append(f"event {key} ({event}): runs {rs}")
            return None
        return rs[0]

    acked_events = {e for e, _ in flows.acked.values()}
    for e in by_event:
        if e not in acked_events:
            problems.append(f"runs of an event nobody acknowledged: {e}")

    # (1) Parked runs: each finishes once, after its sleep, wherever.
    faults_at = [(marks[k], k) for k in ("kill1", "kill2", "down")
                 if k in marks]
    outlived = collections.Counter()
    for key in sorted(k for k in flows.acked if k[0] == "S"):
        r = one_run(key, "sleeper")
        if not r:
            continue
        if r["status"] != "succeeded":
            problems.append(f"sleeper {key}: run {r}")
            continue
        run = n3.run(r["id"])
        if run.get("history") or [s["id"] for s in run["steps"]] != \
                ["first", "nap", "after"]:
            problems.append(f"sleeper {key}: run {run}")
            continue
        first, after = once(r["id"], "first"), once(r["id"], "after")
        if not first or not after:
            continue
        parked_by, woke = first[-1]["node"], after[0]["t0"]
        for t, what in faults_at:
            hit = "node2" if what == "down" else "node1"
            if parked_by == hit and first[-1]["t0"] < t < woke:
                outlived[f"{what}: parked by {hit}, finished by"
                         f" {after[-1]['node']}"] += 1
    stats["sleeping runs"] = sum(1 for k in flows.acked if k[0] == "S")
    stats.update(outlived)
    if not any(k.startswith("kill") for k in outlived):
        problems.append("no sleeping run's node was killed while it slept")

    # (3) Debounce: one run per burst, every event in arrival order.
    for key, keys in flows.bursts:
        if len(keys) != DEB_BURST:
            problems.append(f"burst {key}: acknowledged only {keys}")
        rs = [one_run(k, "deb") for k in keys]
        led = [r for r in rs if r and r["status"] == "succeeded"]
        if len(led) != 1:
            problems.append(f"burst {key}: runs {rs}")
            continue
        lead = led[0]
        for r in rs:
            if r and r is not lead and (r["status"] != "cancelled" or
                                        r["error"] != f"debounced into"
                                        f" run {lead['id']}"):
                problems.append(f"burst {key}: run {r} beside {lead}")
        run = n3.run(lead["id"])
        out = run["steps"][0].get("output") if run["steps"] else None
        if out != {"ns": list(range(DEB_BURST))} or run.get("history"):
            problems.append(f"burst {key}: leader {run}")
        once(lead["id"], "collect")
    stats["debounce bursts"] = len(flows.bursts)

    # (4) Throttle: no period holds more than the limit of first starts
    # (run.attempt 1) as the throttle let them through (the step's
    # started_at), whichever node made them; the reservations the nodes
    # committed are printed.
    starts = []
    for key in sorted(k for k in flows.acked if k[0] == "T"):
        r = one_run(key, "thr")
        if not r:
            continue
        if r["status"] != "succeeded":
            problems.append(f"throttled {key}: run {r}")
            continue
        mine = once(r["id"], "call")
        if mine and mine[0]["attempt"] == 1:
            step = n3.run(r["id"])["steps"][0]
            starts.append(iso_ms(step["started_at"]))
        else:
            stats["throttled runs without a first start recorded"] += 1
    starts.sort()
    for i in range(len(starts) - THR_LIMIT):
        if starts[i + THR_LIMIT] - starts[i] < THR_PERIOD_MS:
            problems.append(f"throttle: {THR_LIMIT + 1} first starts within"
                            f" {THR_PERIOD_MS}ms: {starts[i:i + THR_LIMIT + 1]}")
    res = q_json(pg, "hf_state",
                 "SELECT at FROM throttle_log WHERE key = 'shared'")
    stats["throttled runs"] = sum(1 for k in flows.acked if k[0] == "T")
    stats["throttle reservations"] = len(res)
    stats["throttled first starts"] = len(starts)

    # (2) Schedule: one run per fire time, stored under its dedupe key,
    # fires all along the faults.
    ticks = q_json(pg, "hf_state",
                   "SELECT r.id, r.event_id AS event, r.status,"
                   " (e.query::json)->>'at' AS at, d.key FROM runs r JOIN"
                   " events e ON e.id = r.event_id LEFT JOIN dedupe d ON"
                   " d.workflow = r.workflow AND d.event_id = r.event_id"
                   " WHERE r.workflow = 'tick'")
    per_at = collections.Counter(t["at"] for t in ticks)
    for at, n in per_at.items():
        if n != 1:
            problems.append(f"schedule: {n} runs for the fire time {at}")
    # (the schedule goes on: keys of the fire times read above)
    last = max((t["at"] for t in ticks), default="")
    keys = q_json(pg, "hf_state",
                  "SELECT key FROM dedupe WHERE workflow = 'tick' AND key"
                  f" <= 'schedule:0:{last}'")
    if sorted(k["key"] for k in keys) != \
            sorted(f"schedule:0:{t['at']}" for t in ticks) or \
            any(t["key"] != f"schedule:0:{t['at']}" for t in ticks):
        problems.append(f"schedule: dedupe keys {keys[:5]}…, runs"
                        f" {ticks[:5]}…")
    secs = sorted(int(datetime.datetime.strptime(
        t["at"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()) for t in ticks)
    for a, b in (("kill2", "restart2"), ("down", "up")):
        if a in marks and b in marks and not any(
                marks[a] <= s <= marks[b] for s in secs):
            problems.append(f"schedule: no fire between {a} and {b}"
                            f" ({marks[a]}..{marks[b]}): {secs}")
    settled_by = float(marks.get("up", 0)) + 5
    for t in ticks:
        if t["status"] != "succeeded" and secs and \
                t["at"] and t["at"] < time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(settled_by)):
            problems.append(f"schedule: run {t}")
    stats["schedule fires"] = len(secs)
    stats["schedule seconds without a fire"] = (
        secs[-1] - secs[0] + 1 - len(set(secs))) if secs else 0
    stats["schedule fires by node"] = dict(collections.Counter(
        x["node"] for x in log if x["workflow"] == "tick"))
    print("what the faults did to the flow controls:", dict(stats))
    return problems

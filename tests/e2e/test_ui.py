"""The dashboard at /ui, driven in real headless Chromium (Debian's chromium and
chromedriver, spoken to over WebDriver by webdriver.py) against a running
`hookflow serve`: log in, see a run appear after a webhook, open it and its
event, replay it, retry a failed run and a failed delivery, on a wide and a
narrow window. A PNG of each page is kept as an artifact in
$HF_ARTIFACTS (default: BUILD_DIR/artifacts/ui); HF_UPDATE_SCREENSHOT=1 also
copies the runs page to docs/dashboard.png for the README.

Also the admin API call the dashboard adds: POST /api/runs/ID/retry."""
import json
import os
import pathlib
import re
import shutil

import pytest

import webdriver
from conftest import BIN, ROOT, data_exec, wait_for

ARTIFACTS = pathlib.Path(os.environ.get(
    "HF_ARTIFACTS", pathlib.Path(BIN).resolve().parent / "artifacts" / "ui"))

HELLO = """
name: hello
description: Greets whoever posts
on:
  webhook:
    path: /hello
steps:
  - id: greet
    run: |
      log.info("greeting", event.body.name)
      return { greeting = "hello " .. event.body.name, n = 1 }
  - id: shout
    run: |
      log.warn("loud")
      return string.upper(steps.greet.greeting)
"""

# Fails until the data database says otherwise: a failed run to retry.
FLAKY = """
name: flaky
on:
  webhook:
    path: /flaky
steps:
  - id: prepare
    run: |
      db.exec("CREATE TABLE IF NOT EXISTS flags(name TEXT PRIMARY KEY, ok INTEGER)")
      return true
  - id: check
    run: |
      local f = db.one("SELECT ok FROM flags WHERE name = 'flaky'")
      if not f or f.ok ~= 1 then error("the flag is not set yet") end
      return { fixed = true }
"""

EMIT = """
name: emit
on:
  webhook:
    path: /emit
steps:
  - id: send
    run: |
      return webhook.emit(event.body.url, { order = 42 }, { attempts = 1 })
"""

BROKEN = """
name: nightly-report
on:
  webhook:
    path: /report
steps:
  - id: fetch
    run: |
      return { rows = 3 }
  - id: render
    run: |
      error("template 'weekly' not found")
"""

XSS = XSS = '<img src=x onerror="window.__xss=1">'


def shot(browser, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return browser.screenshot(str(ARTIFACTS / f"{name}.png"))


@pytest.fixture
def browser():
    if not webdriver.available():
        pytest.fail("the dashboard tests need Chromium: apt-get install chromium "
                    "chromium-driver (sh .ci/deps installs them)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with webdriver.Browser(log_path=str(ARTIFACTS / "chromedriver.log")) as b:
        yield b


def status_of(browser, css):
    return browser.js(
        "var e = document.querySelector(arguments[0]);"
        "return e ? e.getAttribute('data-status') : null;", css)


def go(browser, srv, hash_):
    browser.js("location.hash = arguments[0];", hash_)


def login(browser, srv):
    browser.get(f"http://127.0.0.1:{srv.port}/ui")
    browser.wait_css("#token").send_keys(srv.token)
    browser.find("#login-btn").click()
    browser.wait_css("#workflows-table")


def test_dashboard_end_to_end(server, receiver, browser):
    receiver.default = (410, {}, "gone")
    srv = server(workflows={"hello": HELLO, "flaky": FLAKY, "emit": EMIT,
                            "broken": BROKEN})
    base = f"http://127.0.0.1:{srv.port}"

    # A wrong token is refused and the form says so.
    browser.get(base + "/ui")
    browser.wait_css("#token").send_keys("not-the-token")
    browser.find("#login-btn").click()
    browser.wait_text("#login-error", "not accepted")
    assert browser.js("return sessionStorage.getItem('hookflow.token')") is None
    shot(browser, "login")

    # The right one: the workflows page, with path, methods and verify.
    browser.find("#token").clear()
    login(browser, srv)
    assert browser.js("return sessionStorage.getItem('hookflow.token')") == srv.token
    browser.wait_text("#workflows-table", "/hello")
    assert browser.find_all('tr[data-workflow="flaky"]')
    row = browser.find('tr[data-workflow="hello"]').text
    assert "/hello" in row and "POST" in row and "never" in row
    shot(browser, "workflows")

    # No runs yet: the empty state shows how to send a first webhook.
    go(browser, srv, "#/runs")
    browser.wait_text("#runs", "No runs yet")
    assert f"curl -s {base}/" in browser.find("#runs").text
    shot(browser, "runs-empty")

    # A webhook: its run appears in the list without reloading the page.
    r = srv.post("/hello", {"name": "ada"}, headers={"X-Note": XSS})
    assert r.status == 202, r
    run_id = r.json()["runs"][0]
    event_id = r.json()["event"]
    browser.wait(lambda: status_of(browser, f'tr[data-run="{run_id}"]') == "succeeded",
                 timeout=20, what="the run to show as succeeded in the runs list")
    assert "hello" in browser.find(f'tr[data-run="{run_id}"]').text

    # Filters: by status (failed: none yet) and back.
    go(browser, srv, "#/runs?status=failed")
    browser.wait_text("#runs", "No runs match")
    go(browser, srv, "#/runs?workflow=hello")
    browser.wait_css(f'tr[data-run="{run_id}"]')
    shot(browser, "runs")

    # Open the run: steps on a timeline with durations, outputs, logs.
    browser.find(f'tr[data-run="{run_id}"] a').click()
    browser.wait_css('[data-step="shout"]')
    greet = browser.find('[data-step="greet"]').text
    assert "hello ada" in greet and "greeting ada" in greet
    assert "HELLO ADA" in browser.find('[data-step="shout"]').text
    assert "loud" in browser.find('[data-step="shout"]').text
    assert len(browser.find_all(".bar.s-succeeded")) == 2
    shot(browser, "run")

    # Its event: headers (escaped, never run as HTML) and the body, pretty.
    browser.find("#event-link").click()
    browser.wait_css("#event-headers")
    assert XSS in browser.find("#event-headers").text
    assert browser.js("return window.__xss === undefined")
    assert not browser.find_all("#event img")
    assert '"name": "ada"' in browser.find("#event-body").text
    browser.wait_css(f'#event-runs tr[data-run="{run_id}"]')
    shot(browser, "event")

    # Replay it: the page confirms and lists the new run.
    browser.find("#replay").click()
    browser.wait_text("#flash", "Replayed the event: 1 new run")
    ev = wait_for(lambda: (lambda e: e if len(e["runs"]) == 2 else None)(
        srv.api("GET", f"/api/events/{event_id}").json()), what="the replayed run")
    new_run = [x for x in ev["runs"] if x != run_id][0]
    assert new_run in browser.find("#flash").text
    browser.wait_css(f'#event-runs tr[data-run="{new_run}"]')
    assert srv.wait_run(new_run)["status"] == "succeeded"
    shot(browser, "event-replayed")

    # A failed run: its error with the traceback, then a retry from the page.
    r = srv.post("/flaky", {})
    failed = r.json()["runs"][0]
    assert srv.wait_run(failed)["status"] == "failed"
    go(browser, srv, f"#/runs/{failed}")
    browser.wait_css("#retry-run")
    err = browser.find('[data-step="check"] .step-error').text
    assert "the flag is not set yet" in err and "traceback" in err
    assert browser.find('[data-step="prepare"] .badge').text == "succeeded"
    shot(browser, "run-failed")
    data_exec(srv.data, "INSERT INTO flags VALUES ('flaky', 1)")
    browser.find("#retry-run").click()
    browser.wait_text("#flash", "queued again from its failed step")
    browser.wait(lambda: browser.js(
        "return !!document.querySelector('h1 [data-status=\"succeeded\"]')"),
        timeout=20, what="the retried run to succeed on its page")
    run = srv.run(failed)
    assert run["status"] == "succeeded" and run["attempt"] == 2
    # The steps show the new attempt; the failed one is kept below them.
    assert "the flag is not set yet" not in browser.find(".timeline").text
    assert not browser.find_all("#run-error")
    hist = browser.find('#run-history [data-attempt="1"]').text
    assert "Attempt 1" in hist and "the flag is not set yet" in hist
    assert browser.find('#run-history [data-history-step="check"] .badge').text == "failed"
    browser.js("document.getElementById('run-history').scrollIntoView();")
    shot(browser, "run-history")
    browser.js("window.scrollTo(0, 0);")
    shot(browser, "run-retried")

    # A failed delivery: listed, retried from the page, then delivered.
    r = srv.post("/emit", {"url": receiver.url + "/hook"})
    emit_run = srv.wait_run(r.json()["runs"][0])
    did = emit_run["steps"][0]["output"]
    wait_for(lambda: srv.api("GET", f"/api/deliveries/{did}").json()["status"] == "failed",
             timeout=20, what="the delivery to fail")
    go(browser, srv, "#/deliveries?status=failed")
    browser.wait(lambda: status_of(browser, f'tr[data-delivery="{did}"]') == "failed",
                 what="the failed delivery in the list")
    assert "410" in browser.find(f'tr[data-delivery="{did}"]').text
    shot(browser, "deliveries")
    receiver.default = (200, {}, "ok")
    browser.find(f'[data-retry-delivery="{did}"]').click()
    browser.wait_text("#flash", "pending again")
    go(browser, srv, f"#/deliveries/{did}")
    browser.wait(lambda: len(browser.find_all("#attempts-table tr[data-attempt]")) == 2,
                 timeout=20, what="the second attempt")
    assert "delivered" in browser.find("#delivery").text
    rows = [e.text for e in browser.find_all("#attempts-table tr[data-attempt]")]
    assert "410" in rows[0] and "200" in rows[1]
    shot(browser, "delivery")

    # The workflows page now shows last runs and a rate.
    go(browser, srv, "#/workflows")
    browser.wait(lambda: "never" not in browser.find('tr[data-workflow="hello"]').text,
                 what="hello's last run on the workflows page")
    rpm = float(browser.find('tr[data-workflow="hello"] [data-rpm]').text.split()[0])
    assert rpm > 0
    broken = srv.post("/report", {}).json()["runs"][0]
    go(browser, srv, "#/runs")
    browser.wait(lambda: status_of(browser, f'tr[data-run="{broken}"]') == "failed",
                 timeout=20, what="the failed run in the list")
    assert "template 'weekly' not found" in browser.find(f'tr[data-run="{broken}"]').text
    shot(browser, "runs-wide")
    if os.environ.get("HF_UPDATE_SCREENSHOT"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(ARTIFACTS / "runs-wide.png", ROOT / "docs" / "dashboard.png")

    # A narrow window: no sideways scrolling of the page itself.
    browser.set_size(390, 844)
    go(browser, srv, f"#/runs/{run_id}")
    browser.wait_css('[data-step="shout"]')
    assert browser.js("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(browser, "run-narrow")
    go(browser, srv, "#/runs")
    browser.wait_css(f'tr[data-run="{run_id}"]')
    assert browser.js("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(browser, "runs-narrow")

    # Log out: the token is gone and the form is back.
    browser.find("#logout").click()
    browser.wait_css("#token")
    assert browser.js("return sessionStorage.getItem('hookflow.token')") is None


def test_ui_page_is_self_contained(server):
    srv = server(workflows={"hello": HELLO})
    r = srv.get("/ui")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    # Nothing from elsewhere: no external script, style or font; the script
    # and the styles are the page's own files (/ui/app.js, /ui/app.css).
    js, css = srv.get("/ui/app.js").body, srv.get("/ui/app.css").body
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", r.body)
    assert re.findall(r'<script src="([^"]*)"', r.body) == ["/ui/app.js"]
    assert re.findall(r'<link rel="stylesheet" href="([^"]*)"',
                      r.body) == ["/ui/app.css"]
    for text in (r.body, css):
        assert "@import" not in text
        assert not re.search(r"url\(\s*[\"']?(https?:)?//", text)
    # Data goes in as text, never as markup.
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js
    assert "document.write" not in js


def test_retry_run_api(server):
    srv = server(workflows={"flaky": FLAKY, "hello": HELLO})
    failed = srv.post("/flaky", {}).json()["runs"][0]
    assert srv.wait_run(failed)["status"] == "failed"
    ok = srv.post("/hello", {"name": "x"}).json()["runs"][0]
    assert srv.wait_run(ok)["status"] == "succeeded"

    assert srv.api("POST", "/api/runs/run_nope/retry").status == 404
    r = srv.api("POST", f"/api/runs/{ok}/retry")
    assert r.status == 409 and "succeeded" in r.json()["error"]
    assert srv.request("POST", f"/api/runs/{failed}/retry").status == 401

    data_exec(srv.data, "INSERT INTO flags VALUES ('flaky', 1)")
    r = srv.api("POST", f"/api/runs/{failed}/retry")
    assert r.status == 202, r
    assert r.json() == {"run": failed}
    run = wait_for(lambda: (lambda x: x if x["status"] == "succeeded" else None)(
        srv.run(failed)), timeout=20, what="the retried run to succeed")
    assert run["attempt"] == 2
    # From its failed step: the step that had succeeded did not run again.
    assert [s["id"] for s in run["steps"]] == ["prepare", "check"]
    assert run["steps"][1]["status"] == "succeeded"
    # Now it succeeded: no second retry.
    assert srv.api("POST", f"/api/runs/{failed}/retry").status == 409

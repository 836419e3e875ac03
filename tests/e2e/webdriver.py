"""A small W3C WebDriver client over HTTP, standard library only, for driving
Debian's headless Chromium through chromedriver in the dashboard tests.

Only what the tests need: sessions, navigation, finding elements, clicking,
typing, running a script, screenshots. Every wait is bounded."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from pgcluster import free_port  # chromedriver needs a port given to it

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM = os.environ.get("HF_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HF_CHROMEDRIVER", "/usr/bin/chromedriver")


def available():
    """True when chromium and chromedriver are installed."""
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


class WebDriverError(Exception):
    pass


class Element:
    def __init__(self, driver, ref):
        self.driver = driver
        self.ref = ref

    def _cmd(self, method, path, body=None):
        return self.driver._cmd(method, f"/element/{self.ref}{path}", body)

    def click(self):
        self._cmd("POST", "/click", {})

    def send_keys(self, text):
        self._cmd("POST", "/value", {"text": text})

    def clear(self):
        self._cmd("POST", "/clear", {})

    @property
    def text(self):
        return self._cmd("GET", "/text")

    def attr(self, name):
        return self._cmd("GET", f"/attribute/{name}")

    def find(self, css):
        v = self._cmd("POST", "/element", {"using": "css selector", "value": css})
        return Element(self.driver, v[ELEMENT])

    def find_all(self, css):
        v = self._cmd("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self.driver, e[ELEMENT]) for e in v]


class Browser:
    """chromedriver + one headless Chromium session. Use as a context manager."""

    def __init__(self, width=1280, height=900, log_path=None):
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="hf-chromium-")
        self.log = open(log_path or os.devnull, "w")
        self.session = None
        self.proc = None
        try:
            # a port free_port() gave back may be taken by another test's
            # server before chromedriver binds it: chromedriver then exits,
            # and another port is tried, a bounded number of times
            for attempt in range(3):
                self.port = free_port()
                self.base = f"http://127.0.0.1:{self.port}"
                self.proc = subprocess.Popen(
                    [CHROMEDRIVER, f"--port={self.port}",
                     "--allowed-ips=127.0.0.1"], stdout=self.log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                try:
                    self._wait_ready(20)
                    break
                except WebDriverError:
                    if self.proc.poll() is None or attempt == 2:
                        raise
            caps = {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "timeouts": {"pageLoad": 20000, "script": 10000, "implicit": 0},
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--disable-quic",
                             "--no-first-run", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync",
                             "--disable-extensions", "--disable-default-apps",
                             f"--window-size={width},{height}",
                             f"--user-data-dir={self.profile}"]}}}}
            v = self._http("POST", "/session", caps, timeout=60)
            self.session = v["sessionId"]
        except Exception:
            self.quit()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.quit()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise WebDriverError("chromedriver exited at start")
            try:
                if self._http("GET", "/status", timeout=2).get("ready"):
                    return
            except (OSError, WebDriverError):
                pass
            time.sleep(0.1)
        raise WebDriverError("chromedriver did not become ready")

    def _http(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                payload = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read() or b"{}")
            except ValueError:
                payload = {}
            v = payload.get("value") or {}
            raise WebDriverError(f"{method} {path}: {v.get('error')}: "
                                 f"{(v.get('message') or '')[:500]}") from None
        return payload.get("value", payload)

    def _cmd(self, method, path, body=None, timeout=30):
        return self._http(method, f"/session/{self.session}{path}", body, timeout)

    # --- navigation and scripts
    def get(self, url):
        self._cmd("POST", "/url", {"url": url}, timeout=40)

    @property
    def url(self):
        return self._cmd("GET", "/url")

    def js(self, script, *args):
        return self._cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def set_size(self, width, height):
        self._cmd("POST", "/window/rect", {"width": width, "height": height})

    # --- elements
    def find(self, css):
        v = self._cmd("POST", "/element", {"using": "css selector", "value": css})
        return Element(self, v[ELEMENT])

    def find_all(self, css):
        v = self._cmd("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, e[ELEMENT]) for e in v]

    def wait(self, cond, timeout=15, interval=0.1, what="condition"):
        """Polls cond() until truthy; WebDriver errors count as not yet."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                v = cond()
                if v:
                    return v
            except WebDriverError as e:
                last = e
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                     + (f" (last error: {last})" if last else ""))
            time.sleep(interval)

    def wait_css(self, css, timeout=15):
        return self.wait(lambda: self.find_all(css) and self.find(css),
                         timeout, what=f"element {css!r}")

    def wait_text(self, css, needle, timeout=15):
        return self.wait(lambda: any(needle in e.text for e in self.find_all(css)),
                         timeout, what=f"{needle!r} in {css!r}")

    def screenshot(self, path):
        png = base64.b64decode(self._cmd("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return path

    def quit(self):
        if self.session:
            try:
                self._http("DELETE", f"/session/{self.session}", timeout=20)
            except (OSError, WebDriverError):
                pass
            self.session = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

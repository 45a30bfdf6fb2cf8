"""Dashboard: two real run directories overlaid, escaping, and a headless Chromium render.

The browser test drives Debian's ``chromium`` through the DevTools protocol over
``--remote-debugging-pipe`` (stdlib only): it loads the page, collects console
messages, uncaught exceptions and log entries, counts the drawn charts and takes
a screenshot. Without Chromium the test skips, unless ``CI=true``.
"""
import base64
import fcntl
import io
import json
import math
import os
import re
import select
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lifelong.cli import main as cli_main
from lifelong.evaluation.dashboard import DashboardConfig, render_dashboard, write_dashboard
from lifelong.evaluation.history import ClusterRecord, RoundRecord, RunHistory, save_history

TASKS = ["digits", "vqa <shape> & \"colour\"", "counting", "text_only"]
EVIL = "<script>alert('x')</script>"
EXPERTS = ["el2n", "ppl", "ig"]


def _make_run(run_dir: Path, name: str, strategy: str, drop: float, rounds: int, seed: int) -> Path:
    """A fake run written through history.py: accuracy rises on the new task, others decay by ``drop``."""
    rng = np.random.default_rng(seed)
    h = RunHistory(run=name, strategy=strategy, tasks=list(TASKS))
    acc = np.array([0.1, 0.2, 0.05, 0.3])
    h.set_accuracy_row(0, acc)
    for t in range(1, rounds + 1):
        acc = np.clip(acc - drop, 0, 1)
        acc[t - 1] = 0.9 - 0.05 * t
        row = acc.copy()
        if t == 2:
            row[3] = np.nan  # one task not evaluated this round
        h.set_accuracy_row(t, row)
        clusters = [
            ClusterRecord(id=c, size=int(rng.integers(40, 160)), expert=EXPERTS[c % 3], entropy=3.0 + 0.2 * c, selected=20)
            for c in range(4)
        ]
        h.set_round(
            RoundRecord(
                round=t, dataset=TASKS[t - 1], pool_size=800 * t - 100 * (t > 2), selected=200 + 10 * seed, pruned=100 * (t > 2),
                train_loss=[[s, 2.5 * math.exp(-s / 15) + 0.4 + 0.1 * seed] for s in range(0, 50, 5)],
                stage_seconds={"sketch": 1.0 + t, "train": 20.0}, clusters=clusters,
            )
        )
    save_history(h, run_dir)
    return run_dir


@pytest.fixture
def two_runs(tmp_path):
    a = _make_run(tmp_path / "run_adapt", "adapt-demo", "adapt_inf", drop=0.03, rounds=4, seed=0)
    b = _make_run(tmp_path / "run_seq", f"seq {EVIL}", "sequential", drop=0.15, rounds=3, seed=1)  # still in progress
    return [a, b]


class _Charts(HTMLParser):
    """Collects svg.chart ids and, per chart, the data-run of its series."""

    def __init__(self):
        super().__init__()
        self.charts, self.series, self._current = [], {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and "chart" in (a.get("class") or "").split():
            self._current = a["id"]
            self.charts.append(a["id"])
            self.series[a["id"]] = []
        elif tag == "g" and a.get("class") == "series" and self._current:
            self.series[self._current].append(a.get("data-run"))

    def handle_endtag(self, tag):
        if tag == "svg":
            self._current = None


def test_two_runs_overlaid(two_runs, tmp_path):
    out = write_dashboard(two_runs, tmp_path / "dash" / "dashboard.html")
    text = out.read_text(encoding="utf-8")
    p = _Charts()
    p.feed(text)
    for cid in ["avg-acc", "forgetting", "pool-size", "train-loss", "heatmap-0", "heatmap-1", "task-curves-0", "clusters-1"]:
        assert cid in p.charts, cid
    names = ["adapt-demo", f"seq {EVIL}"]
    for cid in ["avg-acc", "forgetting", "train-loss"]:
        assert p.series[cid] == names, cid  # both runs drawn on the same axes
    assert p.series["pool-size"] == [names[0], names[0], names[1], names[1]]  # pool + selected per run
    assert p.series["task-curves-0"] == [names[0]] * len(TASKS)
    # The heatmap shows numbers: after round 1 task 0 is 0.85; row 0 of task 2 is 0.05.
    heat = text[text.index('id="heatmap-0"') : text.index("</svg>", text.index('id="heatmap-0"'))]
    assert ">0.85<" in heat and ">0.05<" in heat and "\u2013" in heat  # NaN cell shown as a dash
    # Routed experts per round appear as stacked bars.
    assert all(f'data-expert="{e}"' in text for e in EXPERTS)


def test_everything_from_data_is_escaped_and_offline(two_runs, tmp_path):
    text = write_dashboard(two_runs, tmp_path / "d.html").read_text(encoding="utf-8")
    assert EVIL not in text and "<shape>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "<script" not in text.lower()  # no JavaScript at all
    # Nothing that could reach the network: no URLs, no external resources.
    assert not re.search(r"https?:|//cdn|src=|@import|url\(", text, re.I)


def test_dashboard_of_empty_and_fresh_runs():
    fresh = RunHistory(run="fresh", strategy="adapt_inf", tasks=["a", "b"])
    before = RunHistory(run="before", strategy="multitask", tasks=["a", "b"])
    before.set_accuracy_row(0, [0.2, 0.3])
    text = render_dashboard([fresh, before], DashboardConfig(title="T & <t>"))
    assert "no data yet" in text and "T &amp; &lt;t&gt;" in text
    assert render_dashboard([]).count('class="chart') == 4


def _relative_gain_cell(text: str, run: str) -> str:
    row = re.search(rf">{re.escape(run)}</a>.*?</tr>", text).group(0)
    return re.findall(r"<td>([^<]*)</td>", row)[-1]


def test_relative_gain_against_the_multitask_run(tmp_path):
    a = _make_run(tmp_path / "a", "adapt", "adapt_inf", drop=0.0, rounds=4, seed=0)
    mt = RunHistory(run="joint", strategy="multitask", tasks=list(TASKS))
    mt.set_accuracy_row(0, [0.1, 0.2, 0.05, 0.3])
    mt.set_accuracy_row(1, [0.85, 0.8, 0.75, 0.7])  # the adapt run's diagonal, so gain = 100
    save_history(mt, tmp_path / "mt")
    text = write_dashboard([a, tmp_path / "mt"], tmp_path / "d.html").read_text()
    # adapt final row: 0.85, 0.8, 0.75, 0.7 (no decay, drop=0) -> 100 % of the reference
    assert _relative_gain_cell(text, "adapt") == "100"


def test_command_line_entry(two_runs, tmp_path, capsys):
    out = tmp_path / "cli" / "board.html"
    assert cli_main(["dashboard", *[str(d) for d in two_runs], "--out", str(out), "--title", "My runs"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "<title>My runs</title>" in out.read_text()
    assert cli_main(["dashboard", str(two_runs[0])]) == 0  # default: <first run>/dashboard.html
    assert (two_runs[0] / "dashboard.html").exists()


# --------------------------------------------------------------------------- browser

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--mute-audio", "--remote-debugging-pipe",
]
BROWSER_TIMEOUT_S = 60.0


def _find_chromium():
    """$LIFELONG_CHROMIUM, else chromium on PATH, else Debian's /usr/bin/chromium; None if none."""
    candidates = [os.environ.get("LIFELONG_CHROMIUM", "")]
    candidates += [shutil.which(n) or "" for n in ("chromium", "chromium-browser", "google-chrome")]
    candidates.append("/usr/bin/chromium")
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


class Chromium:
    """Minimal DevTools-protocol client over --remote-debugging-pipe (fd 3: to the browser, fd 4: from it)."""

    def __init__(self, exe: str, profile: Path, width: int, height: int):
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def wire():  # in the child: the two pipe ends become (inheritable) fds 3 and 4
            hi_r, hi_w = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # Python opens fds non-inheritable, so with close_fds=False only 0-2 and the dup2'd 3, 4 reach chromium.
            preexec_fn=wire, close_fds=False,
        )
        os.close(to_r)
        os.close(from_w)
        self._buf, self._next_id, self.events = b"", 0, []
        self.session = None

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._from_r], [], [], left)
            if ready:
                chunk = os.read(self._from_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe: " + self.proc.stderr.read().decode(errors="replace")[-2000:])
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params=None, session: bool = True) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while True:
            ev = self._read_message(deadline)
            self.events.append(ev)
            if ev.get("method") == method:
                return ev

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_w)
        os.close(self._from_r)
        self.proc.stderr.close()


PAGE_PROBE = """JSON.stringify({
  charts: [...document.querySelectorAll('svg.chart')].map(e => {
    const r = e.getBoundingClientRect();
    return {id: e.id, w: r.width, h: r.height, marks: e.querySelectorAll('path, rect, circle').length};
  }),
  title: document.title,
  height: document.documentElement.scrollHeight
})"""


def render_in_chromium(exe: str, html_file: Path, profile: Path, width: int = 1400, height: int = 2000) -> dict:
    """Load ``html_file``; return console problems, chart boxes and a PNG screenshot."""
    b = Chromium(exe, profile, width, height)
    try:
        target = b.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        b.session = b.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            b.call(f"{domain}.enable")
        b.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        nav = b.call("Page.navigate", {"url": html_file.resolve().as_uri()})
        assert "errorText" not in nav, nav
        b.wait_event("Page.loadEventFired")
        probe = json.loads(b.call("Runtime.evaluate", {"expression": PAGE_PROBE, "returnByValue": True})["result"]["value"])
        png = base64.b64decode(b.call("Page.captureScreenshot", {"format": "png"})["data"])
    finally:
        b.close()
    problems = []
    for ev in b.events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            problems.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p.get('args', [])]}")
        elif m == "Runtime.exceptionThrown":
            problems.append(f"exception: {p['exceptionDetails'].get('exception', {}).get('description') or p['exceptionDetails'].get('text')}")
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":  # e.g. a resource that failed to load
            problems.append(f"log {p['entry']['source']}: {p['entry']['text']}")
    return {"problems": problems, "probe": probe, "png": png}


@pytest.fixture
def chromium():
    exe = _find_chromium()
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no chromium on PATH (install Debian's `chromium`)")
        pytest.skip("no chromium on PATH: browser test of the dashboard not run (apt-get install chromium)")
    return exe


def test_console_checker_sees_errors(chromium, tmp_path):
    """The probe itself works: console.error, an uncaught exception and a missing resource are caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><p>x</p><img src='missing-picture.png'>"
        "<script>console.log('all-good-log'); console.error('boom'); nosuchfn();</script></body></html>"
    )
    r = render_in_chromium(chromium, bad, tmp_path / "profile", 400, 300)
    text = " | ".join(r["problems"])
    assert "boom" in text and "nosuchfn" in text and "all-good-log" not in text
    assert "ERR_FILE_NOT_FOUND" in text or "missing-picture" in text, text


def test_dashboard_renders_in_headless_chromium(chromium, two_runs, tmp_path):
    out = write_dashboard(two_runs, tmp_path / "dashboard.html")
    r = render_in_chromium(chromium, out, tmp_path / "profile")
    assert r["problems"] == []
    charts = {c["id"]: c for c in r["probe"]["charts"]}
    expected = ["avg-acc", "forgetting", "pool-size", "train-loss"] + [f"{kind}-{k}" for k in (0, 1) for kind in ("heatmap", "task-curves", "clusters")]
    for cid in expected:
        assert cid in charts, cid
        assert charts[cid]["w"] > 200 and charts[cid]["h"] > 150 and charts[cid]["marks"] > 2, charts[cid]
    assert r["probe"]["title"] == DashboardConfig().title
    img = Image.open(io.BytesIO(r["png"])).convert("RGB")
    assert img.size == (1400, 2000)
    small = np.asarray(img.resize((350, 500)))
    colours = {tuple(px) for px in small.reshape(-1, 3)[::7]}
    assert len(colours) > 50  # charts, text and heatmap, not a blank page
    assert small.std() > 20
    if os.environ.get("LIFELONG_KEEP_SCREENSHOT"):
        Path(os.environ["LIFELONG_KEEP_SCREENSHOT"]).write_bytes(r["png"])

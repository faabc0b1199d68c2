"""report.html: one self-contained page, checked in a real headless Chromium (Debian's
``chromium`` package, which ``.ci/run`` installs): no console error, every figure rendered,
the table sorts, a screenshot taken."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rnnbench.cli import main

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SCREENSHOT_ENV = "RNNBENCH_REPORT_SCREENSHOT"

# Injected into a copy of the page only: errors of any kind (script, a resource that fails
# to load) are recorded from the first line on; after load the probe checks every image,
# sorts the table by its final-metric column both ways and writes what it saw into the DOM.
PROBE_HEAD = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var what = e.target && (e.target.src || e.target.href);
  window.__errors.push(e.message || ("failed to load " + what));
}, true);
["error", "warn"].forEach(function (level) {
  var orig = console[level];
  console[level] = function () {
    window.__errors.push(level + ": " + [].join.call(arguments, " "));
    orig.apply(console, arguments);
  };
});
</script>"""
PROBE_BODY = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var table = document.getElementById("comparison");
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var col = heads.findIndex(function (h) { return h.textContent.indexOf("final ") === 0; });
  function order() {
    return Array.prototype.map.call(table.tBodies[0].rows,
                                    function (r) { return r.cells[0].textContent; });
  }
  heads[col].click(); var up = order();
  heads[col].click(); var down = order();
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({errors: window.__errors, images: imgs.length,
    rendered: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    up: up, down: down});
  document.body.appendChild(out);
});
</script>"""


def _browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with no network at all: any host resolves to nothing."""
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           "--hide-scrollbars", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def page(study, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    assert main(["report", str(study), "--out", str(out), "--format", "html,csv"]) == 0
    return out / "report.html"


def test_the_page_is_self_contained(page, study):
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # no network
    assert "@import" not in text and "url(" not in text
    imgs = re.findall(r'<img src="([^"]+)"', text)
    assert len(imgs) == 3 and all(i.startswith("data:image/png;base64,") for i in imgs)
    assert 'class="sortable"' in text and "data-sort=" in text
    assert "docs/" not in text
    results = json.loads((study / "results.json").read_text())
    for r in results["variants"]:
        assert f"<td>{r['variant']}</td>" in text


def test_the_page_in_headless_chromium(page, tmp_path, tmp_path_factory):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium; .ci/run "
                    "installs it when run as root)")
    probed = tmp_path / "probed.html"
    text = page.read_text()
    probed.write_text(text.replace("<head>", "<head>" + PROBE_HEAD, 1)
                      .replace("</body>", PROBE_BODY + "</body>", 1))
    done = _chromium(browser, tmp_path / "profile", "--dump-dom", probed.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, "the probe did not run:\n" + done.stdout[-2000:] + done.stderr[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["errors"] == []
    assert probe["images"] == 3 and probe["rendered"] == 3  # every figure decoded and drawn
    # gru and lstm have a final mean, rnn_relu none: it stays last both ways
    assert probe["up"][-1] == "rnn_relu" and probe["down"][-1] == "rnn_relu"
    assert probe["up"][:2] == probe["down"][1::-1]
    rows = list(csv.DictReader(open(page.parent / "report.csv")))
    means = {r["variant"]: float(r["test/nll_mean"]) for r in rows if r["test/nll_mean"]}
    assert probe["up"][:2] == sorted(means, key=means.get)  # by the number, not the text
    # the page itself (no probe) logs nothing to the console
    shot = tmp_path_factory.getbasetemp() / "report_screenshot.png"
    done = _chromium(browser, tmp_path / "profile2", "--window-size=1400,2400",
                     f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    pixels = imread(shot)  # (H, W, channels): not a blank page
    assert pixels.shape[:2] == (2400, 1400) and pixels.std() > 0.05
    if os.environ.get(SCREENSHOT_ENV):
        Path(os.environ[SCREENSHOT_ENV]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, os.environ[SCREENSHOT_ENV])
    print(f"report.html screenshot: {shot}")

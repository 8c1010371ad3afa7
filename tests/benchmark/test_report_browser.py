"""The benchmark report as users see it (issue 13 item 3): rendered by a real browser (headless
Chromium), the verdict sits in the first screen and every table and figure is laid out with a
size. The page itself is probed by a script the test appends to a copy of the report: Chromium
lays the page out and the script records what it measured into the DOM that `--dump-dom` prints.

Chromium comes from the system (`make test` installs Debian's package where it can); without
it the test is skipped, except on CI (CI=1 / CI=true), where a missing browser is a failure."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

from tests.support.ci import on_ci
from tissuebert.cli.app import main
from tissuebert.constants import OUT

pytestmark = pytest.mark.slow

PROBE = """<script>window.addEventListener('load', () => {
  const shown = el => { const b = el.getBoundingClientRect(), s = getComputedStyle(el);
    return b.width > 0 && b.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const v = document.getElementById('verdict'), r = v.getBoundingClientRect();
  document.body.setAttribute('data-probe', JSON.stringify({verdict: v.innerText, top: r.top, shown: shown(v),
    viewport: innerHeight, tables: [...document.querySelectorAll('table')].map(shown),
    bold: [...document.querySelectorAll('table b')].map(b => b.innerText),
    images: [...document.images].map(i => i.naturalWidth)}));
});</script>"""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        msg = "chromium not found (apt-get install chromium; `make test` installs it where it can)"
        if on_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def test_the_report_opens_with_its_verdict_and_shows_every_table_and_figure(sim, tmp_path):
    browser = _chromium()
    out = tmp_path / "bench"
    assert main(["benchmark", "--checkpoint", str(sim.checkpoint), "--store", str(sim.store.root), "--out", str(out),
                 "--replicates", "2", "--mixtures", "4", "--depth", "10", "--depth", "100"]) == 0
    result = json.loads((out / OUT.BENCHMARK_JSON).read_text())
    probe = tmp_path / "probe.html"
    probe.write_text((out / OUT.BENCHMARK_HTML).read_text().replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, dom[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["verdict"] == result["verdict"] and seen["verdict"].startswith("Best usable method")
    assert seen["shown"] and 0 <= seen["top"] < seen["viewport"]  # in the first screen, without scrolling
    assert len(seen["tables"]) >= 2 and all(seen["tables"])
    assert len(seen["images"]) == 4 and all(w > 0 for w in seen["images"])  # every figure decoded
    # the bold MAE of each depth is a usable method's, never the oracle's
    oracle = {f"{v['mae']:.4f}" for v in result["methods"]["oracle"]["per_depth"].values()}
    assert seen["bold"] and not oracle & set(seen["bold"])
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", (out / OUT.BENCHMARK_HTML).as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000  # a page, not a blank

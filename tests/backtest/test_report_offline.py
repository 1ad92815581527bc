"""Reports render offline: ``report.html`` and the sweep heat map load ``plotly.min.js`` from beside them, and
headless Chromium with the network off draws their charts (while the old CDN page stays blank there).

The browser test needs Debian's ``chromium`` and the ``playwright`` package (never ``playwright install``), the
way ``tests/mac/dashboard/test_browser.py`` drives it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from backtest.engine import run
from backtest.metrics import run_metrics
from backtest.report import PLOTLY_JS, build_figure, plotly_bundle, write_html_offline, write_report
from backtest.sweep import SweepJob, sweep
from backtest.sweep_axes import parse_axis
from backtest.sweep_heatmap import write_heatmap
from backtest.synth import generate
from settings.config import GridbridgeConfig
from settings.resolve import grid_params_by_code

CODES = ("512890.SH", "159201.SZ")
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
                 if p and Path(p).exists()), None)  # fmt: skip
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SAFETY_MS = 120_000  # a safety net for a stuck page, never a deadline a slow machine has to meet


@pytest.fixture(scope="module")
def data():
    return {code: generate(code, 8, seed) for seed, code in enumerate(CODES, start=1)}


@pytest.fixture(scope="module")
def result(data):
    cfg = GridbridgeConfig()
    return run(data, grid_params_by_code(cfg, CODES, "realistic"), "realistic", config=cfg)


def test_report_loads_plotly_from_beside_it_never_a_cdn(result, tmp_path):
    page = write_report(result, tmp_path / "report.html", run_metrics(result)).read_text()

    assert (
        'src="plotly.min.js"' in page
        and "cdn.plot.ly" not in page
        and "https://" not in page.split("<body>")[0]
    )
    assert (tmp_path / PLOTLY_JS).read_bytes() == plotly_bundle()


def test_a_stale_bundle_is_replaced_and_a_current_one_kept(result, tmp_path):
    (tmp_path / PLOTLY_JS).write_text("/* plotly.js of an older version */")
    write_report(result, tmp_path / "report.html")
    assert (tmp_path / PLOTLY_JS).read_bytes() == plotly_bundle()

    before = (tmp_path / PLOTLY_JS).stat().st_ino
    write_html_offline(build_figure(result), tmp_path / "second.html")
    assert (tmp_path / PLOTLY_JS).stat().st_ino == before  # one bundle serves the folder's pages


def test_links_at_the_outputs_are_replaced_not_written_through(result, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").symlink_to(victim)
    (out / PLOTLY_JS).symlink_to(victim)

    write_report(result, out / "report.html")

    assert victim.read_text() == "keep me"
    assert not (out / "report.html").is_symlink() and not (out / PLOTLY_JS).is_symlink()


# ---------------------------------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def pages(data, result, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    report = write_report(result, folder / "report.html", run_metrics(result))
    cfg = GridbridgeConfig()
    job = SweepJob(
        data=data, params=grid_params_by_code(cfg, CODES, "reference"), mode="reference", config=cfg
    )
    axes = [parse_axis("atr_grid_factor=0.30,0.34"), parse_axis("grid_step_floor=0.0008,0.001"),
            parse_axis("cooling=true,false")]  # fmt: skip
    rows = sweep(job, axes, jobs=1)
    heatmap = write_heatmap(rows, [a.name for a in axes], "atr_grid_factor", "grid_step_floor",
                            folder / "sweep_heatmap.html")  # fmt: skip
    cdn = folder / "cdn.html"
    build_figure(result).write_html(cdn, include_plotlyjs="cdn")  # the old report, as a control
    return {"report": report, "heatmap": heatmap, "cdn": cdn}


@pytest.fixture(scope="module")
def offline_browser():
    if CHROMIUM is None:
        pytest.skip("chromium not found (apt-get install -y chromium); the browser test needs it")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (no browser download)"
    )
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _open_offline(browser, path: Path):
    """The page at ``path`` in a context with the network off: offline, and every non-file request aborted
    (and recorded)."""
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
    blocked: list[str] = []

    def only_files(route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    page = context.new_page()
    page.goto(path.as_uri(), wait_until="load")
    return context, page, blocked


def _drawn_traces(page) -> list[int]:
    """Data traces plotly drew, per chart on the page."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
        .map(gd => (gd._fullData || []).filter(t => t.visible !== false).length)""")


@pytest.mark.browser
@pytest.mark.parametrize("name", ["report", "heatmap"])
def test_pages_draw_their_charts_with_the_network_off(offline_browser, pages, name):
    context, page, blocked = _open_offline(offline_browser, pages[name])
    try:
        page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=SAFETY_MS)

        assert page.evaluate("() => typeof window.Plotly") == "object"
        traces = _drawn_traces(page)
        assert traces and all(n > 0 for n in traces), traces
        assert (
            page.locator(".js-plotly-plot .xaxislayer-above text").count() > 0
        )  # axes laid out from the data
        if name == "heatmap":
            assert page.locator(".js-plotly-plot .hm image").count() == 2  # alpha and max drawdown, painted
        else:
            assert traces[0] >= 2 + len(CODES)  # equity, utilisation, each symbol's prices
            assert page.locator(".js-plotly-plot canvas").count() > 0  # the Scattergl lines, in WebGL
        assert blocked == []  # nothing but the page and its plotly.min.js was asked for
    finally:
        context.close()


@pytest.mark.browser
def test_the_cdn_page_is_blank_offline_so_the_test_above_can_fail(offline_browser, pages):
    context, page, blocked = _open_offline(offline_browser, pages["cdn"])
    try:
        assert page.evaluate("() => typeof window.Plotly") == "undefined"
        assert page.locator(".main-svg").count() == 0
        assert any("cdn.plot.ly" in url for url in blocked), blocked
    finally:
        context.close()

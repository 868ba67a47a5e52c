"""Tests of ``mlperf report``: the pages, their charts, and the pages as a browser shows them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _browser import CHROMIUM_HINT, Chromium, chromium_path

from mlperf.ab.result import AbResult, BenchmarkVerdict
from mlperf.ab.types import Measurement
from mlperf.ab.verdict import Decision
from mlperf.baselines import save_records
from mlperf.cli import main as cli_main
from mlperf.report import ReportError, build_report, markdown_to_html, read_history
from mlperf.report.ab import write_latest_ab
from mlperf.report.benchmarks import slug
from mlperf.report.history import append_history

MACHINE = "test-machine-2c-linux-py311"


def _record(bid: str, median: float, verdict: str = "same", seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    samples = list(median * np.exp(0.03 * rng.standard_normal(30)))
    summary = {
        "n": 30,
        "median": float(np.median(samples)),
        "iqr": 0.0,
        "min": min(samples),
        "mean": 0.0,
    }
    return {
        "id": bid,
        "suite": bid.split("/")[1],
        "metric": "cpu",
        "cpu": {**summary, "samples": samples},
        "wall": {**summary, "samples": samples},
        "memory": {"peak": 2**20, "python": 2**20, "rss": None},
        "extra_info": {},
        "max_regression": 0.25,
        "max_memory_regression": 0.1,
        "verdict": {"time": verdict, "memory": "same", "ratio": 1.0, "p": 0.5, "text": verdict},
    }


def _sha(d: int) -> str:
    return f"{d:x}".rjust(40, "c")


def _run(
    created: str, records: list[dict[str, Any]], failed: bool = False, commit: int = 9
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "mlperf-run",
        "machine_id": MACHINE,
        "commit": _sha(commit),
        "created": created,
        "environment": {"python": "3.11.7", "packages": {"numpy": "2.4.6"}},
        "benchmarks": records,
        "gate": {
            "failed": failed,
            "regressions": [r["id"] for r in records if r["verdict"]["time"] == "REGRESSION"],
        },
    }


A = "suites/compute/test_row_norms.py::test_bench[numba]"
B = "suites/io/test_formats.py::test_save[parquet]"


def _ab_result() -> AbResult:
    decision = Decision(
        verdict="REGRESSION",
        ratio=1.08,
        ci_low=1.05,
        ci_high=1.11,
        p_slower=1e-4,
        p_faster=1.0,
        n_base=60,
        n_head=60,
        threshold=0.03,
        base_median=1e-3,
        head_median=1.08e-3,
    )
    return AbResult(
        base="main",
        head="HEAD",
        threshold=0.03,
        benchmarks=[BenchmarkVerdict(measurement=Measurement(id=A), decision=decision)],
        seconds=12.0,
    )


def _png(path: Path, title: str) -> None:
    from mlperf.report.charts import pyplot as _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [3, 1, 2])
    ax.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A reports/ folder as `make bench` leaves it, and a baselines/ folder (built once)."""
    tmp_path = tmp_path_factory.mktemp("tree")
    reports, baselines = tmp_path / "reports", tmp_path / "baselines"
    save_records(baselines, [_record(A, 1e-3, seed=1), _record(B, 2e-2, seed=2)], machine=MACHINE)
    latest = _run(
        "2026-11-26T22:00:00+00:00",
        [_record(A, 1.4e-3, "REGRESSION", 3), _record(B, 2e-2, seed=4)],
        True,
    )
    reports.mkdir()
    (reports / "latest.json").write_text(json.dumps(latest))
    history = reports / "history" / f"{MACHINE}.jsonl"
    history.parent.mkdir()
    lines = [  # lines of the former format (whole run records), read as well
        json.dumps(
            _run(
                f"2026-11-2{d}T10:00:00+00:00",
                [_record(A, 1e-3 * (1 + d / 100), seed=d), _record(B, 2e-2, seed=d)],
                commit=d,
            )
        )
        for d in range(1, 6)
    ]
    lines.append('{"torn line of a killed run')
    history.write_text("\n".join(lines) + "\n")
    append_history(reports, latest, None)  # type: ignore[arg-type]
    write_latest_ab(reports, _ab_result().as_dict(samples=False), _ab_result().markdown())
    _png(reports / "io" / "format_chart.png", "formats")
    (reports / "io" / "formats.md").write_text(
        "## Formats, 1M rows\n\n| format | save ms | load ms |\n|---|---:|---:|\n| parquet | 111 | "
        "20 |\n"
        "| `<script>alert(1)</script>` | 1 | 2 |\n\n- exact round trip: **parquet**\n"
    )
    (reports / "io" / "formats.csv").write_text(
        "format,save_ms\nparquet,111\n"
    )  # raw twin of formats.md
    (reports / "compute").mkdir()
    (reports / "compute" / "methods.csv").write_text(
        "method,median_ms,multiple_of_bound\nnumba,0.28,3.7\nvecdot,0.145,1.9\n"
    )
    _png(reports / "compute" / "methods_vs_bound.png", "methods")
    _png(reports / "distributed" / "engines_vs_rows.png", "engines")
    _png(reports / "distributed" / "tune" / "tune_spark.png", "tune")
    return reports, baselines


@pytest.fixture
def tree(pristine: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the pristine tree, for tests that change it."""
    reports, baselines = tmp_path / "reports", tmp_path / "baselines"
    shutil.copytree(pristine[0], reports)
    shutil.copytree(pristine[1], baselines)
    return reports, baselines


@pytest.fixture(scope="module")
def built(pristine: tuple[Path, Path]) -> Path:
    """The page built once from the pristine tree (read-only tests share it)."""
    return build_report(*pristine)


def _srcs(page: str) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page)


def test_page_has_every_family_and_our_charts(pristine: tuple[Path, Path], built: Path) -> None:
    reports = pristine[0]
    page_path = built
    assert page_path == reports / "index.html"
    page = page_path.read_text()
    for family in ("io", "compute", "distributed"):
        assert f"<h2 id='family-{family}'>{family}</h2>" in page
    assert "family-ab" not in page and "family-benchmarks" not in page  # ours, not a suite's
    srcs = _srcs(page)
    assert "_mlperf/ratio_to_baseline.png" in srcs
    assert {
        "io/format_chart.png",
        "compute/methods_vs_bound.png",
        "distributed/engines_vs_rows.png",
        "distributed/tune/tune_spark.png",
    } <= set(srcs)
    for src in srcs:  # relative to the page, and real PNG files
        assert (reports / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<td class=''>parquet</td>" in page  # the suite's markdown table
    assert "&lt;script&gt;" in page and "<script>alert" not in page  # cells are escaped
    assert "<td class=''>vecdot</td>" in page  # the CSV
    assert (
        "raw data: <a href='io/formats.csv'>formats.csv</a>" in page
    )  # a CSV with a markdown twin is a link
    assert "<td class='bad'>REGRESSION</td>" in page  # the verdict table marks the regression
    assert "FAILED: 1 regression(s)" in page
    assert "1 unreadable line(s)" in page
    assert not re.search(r"(src|href)=['\"]https?:", page)  # nothing to fetch from the network
    assert page.index("id='steps'") < page.index("id='ab'") < page.index("id='latest'")
    for js in re.findall(r"<script src='([^']+)'", page):  # BokehJS, shipped beside the page
        assert (reports / js).is_file()


def test_history_by_commit_with_one_page_per_benchmark(
    pristine: tuple[Path, Path], built: Path
) -> None:
    page = built.read_text()
    specs = json.loads(re.search(r"id='mlperf-charts'>(.*?)</script>", page).group(1))  # type: ignore[union-attr]
    assert {s["title"] for s in specs} == {""} and len(specs) == 2  # one small chart each
    trend = next(s for s in specs if s["target"] == f"c-{slug(A)}")
    assert trend["n"] == 6 and trend["points"]["commit"][-1] == _sha(9)[:10]  # 6 commits
    assert trend["points"]["runs"] == [1] * 6
    for bid in (A, B):
        link = f"benchmarks/{slug(bid)}.html"
        assert f"href='{link}'" in page
        bench = (pristine[0] / link).read_text()
        assert bid in bench and "href='../index.html'" in bench
        assert "<script src='../_mlperf/js/bokeh.min.js'>" in bench


def test_latest_ab_result_is_a_section(built: Path) -> None:
    page = built.read_text()
    section = page[page.index("<section class='ab'>") :]
    section = section[: section.index("</section>")]
    assert "<code>HEAD</code> against <code>main</code>, threshold 3%" in section
    assert "<td class='bad'>REGRESSION</td><td class=''>+8.0% (+5.0% .. +11.0%)</td>" in section
    assert "pull-request comment" in section and "mlperf ab: 1 REGRESSION" in section


def test_an_unreadable_ab_result_says_what_to_do(tree: tuple[Path, Path]) -> None:
    reports, baselines = tree
    (reports / "ab" / "latest.json").write_text('{"kind": "mlperf-ab", "schema_version": 7}')
    page = build_report(reports, baselines).read_text()
    assert "has schema_version 7" in page and "run `mlperf ab` again" in page


def test_history_skips_torn_lines(pristine: tuple[Path, Path]) -> None:
    lines, bad = read_history(pristine[0], MACHINE)
    assert bad == 1 and len(lines) == 6


def test_self_contained_page_inlines_every_image_and_script(
    tree: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "elsewhere" / "page.html"
    page = build_report(*tree, output=out, self_contained=True).read_text()
    srcs = _srcs(page)
    assert len(srcs) == 5
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<script src=" not in page


def test_stale_charts_and_pages_are_removed(tree: tuple[Path, Path]) -> None:
    reports, baselines = tree
    stale = reports / "_mlperf" / "trend_gone.png"
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"x")
    gone = reports / "benchmarks" / "gone-123456.html"
    gone.parent.mkdir(exist_ok=True)
    gone.write_text("x")
    build_report(reports, baselines)
    assert not stale.exists() and not gone.exists()


def test_empty_reports_folder_still_makes_a_page(tmp_path: Path) -> None:
    page = build_report(tmp_path / "reports", tmp_path / "baselines", machine=MACHINE).read_text()
    assert "No benchmark run yet" in page and "pytest --benchmark-enable" in page
    assert "No history of committed runs yet" in page


def test_unknown_schema_is_refused_with_the_fix(tree: tuple[Path, Path]) -> None:
    reports, baselines = tree
    data = json.loads((reports / "latest.json").read_text())
    (reports / "latest.json").write_text(json.dumps({**data, "schema_version": 2}))
    with pytest.raises(ReportError, match=r"schema_version 2.*pytest --benchmark-enable"):
        build_report(reports, baselines)


def test_cli_report(tree: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    reports, baselines = tree
    assert cli_main(["report", "--reports", str(reports), "--baselines", str(baselines)]) == 0
    assert "index.html" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:  # argparse: "must be a finite number >= 1"
        cli_main(["report", "--reports", str(reports), "--history", "0"])
    assert refused.value.code == 2
    assert cli_main(["report", "--reports", str(reports.parent / "nothing-here")]) == 2
    assert "holds no mlperf run" in capsys.readouterr().err


def test_markdown_subset() -> None:
    out = markdown_to_html(
        "# Title\n\ntext with `code`\n\n| a | b |\n|---|---|\n| 1 | **2** |\n\n- x\n- y\n"
    )
    assert "<h3>Title</h3>" in out
    assert "<code>code</code>" in out
    assert "<th>a</th>" in out and "<b>2</b>" in out
    assert "<ul><li>x</li><li>y</li></ul>" in out


def _browser(tmp_path: Path) -> Chromium:
    exe = chromium_path()
    if exe is None:
        pytest.skip(f"Chromium is not installed; install it with: {CHROMIUM_HINT}")
    return Chromium(exe, tmp_path / "profile")


#: the chart canvases of the page, in order, as [x, y, width, height] (Bokeh draws them in
#: shadow roots, so the walk enters every shadow root)
_CANVASES = """(() => { const out = [];
  const walk = (root) => { for (const e of root.querySelectorAll('*')) {
    if (e.tagName === 'CANVAS') { const r = e.getBoundingClientRect();
      if (r.width > 100) out.push([r.x, r.y, r.width, r.height]); }
    if (e.shadowRoot) walk(e.shadowRoot); } };
  walk(document); return out; })()"""
#: the text of every visible hover tooltip
_TOOLTIPS = """(() => { const out = [];
  const walk = (root) => { for (const e of root.querySelectorAll('*')) {
    if (String(e.className).includes('bk-tooltip-content')) out.push(e.textContent);
    if (e.shadowRoot) walk(e.shadowRoot); } };
  walk(document); return out; })()"""


def _hover_tooltip(b: Chromium) -> str:
    """Move a real mouse onto the middle of the first chart; return the tooltip's text."""
    b.wait_until(_CANVASES)
    x, y, w, h = b.eval(_CANVASES)[0]
    b.eval(f"window.scrollTo(0, {y} - 100)")
    x, y, w, h = b.eval(_CANVASES)[0]
    b.move_mouse(1, 1)  # from outside the chart, so that it sees the pointer enter
    for i in range(40):  # across the chart at mid-height until the mouse is over a commit
        b.move_mouse(x + w * (0.1 + 0.02 * i), y + h * 0.5)
        tips = b.wait_until(_TOOLTIPS, timeout=0.3)  # the tooltip follows on the next frame
        if tips:
            return " ".join(tips)
    return ""


def test_page_renders_in_headless_chromium(built: Path, tmp_path: Path) -> None:
    with _browser(tmp_path) as b:
        b.open(built.as_uri())  # from file://, no server, no network
        built_charts = b.wait_until("document.body.getAttribute('data-charts-built')")
        assert built_charts == b.eval("document.body.getAttribute('data-charts-total')") == "2"
        assert b.eval("document.body.getAttribute('data-images-total')") == "5"
        assert b.eval("document.body.getAttribute('data-images-loaded')") == "5"
        tip = _hover_tooltip(b)
        assert re.search(r"commit: ?[0-9a-f]{10}", tip), f"no commit in the tooltip: {tip!r}"
        assert "median" in tip
        assert b.errors() == []


def test_benchmark_page_renders_in_headless_chromium(built: Path, tmp_path: Path) -> None:
    page = built.parent / "benchmarks" / f"{slug(A)}.html"
    with _browser(tmp_path) as b:
        b.open(page.as_uri())
        assert b.wait_until("document.body.getAttribute('data-charts-built')") == "3"
        tip = _hover_tooltip(b)
        assert re.search(r"commit: ?[0-9a-f]{10}", tip), f"no commit in the tooltip: {tip!r}"
        assert b.errors() == []


def test_chromium_notices_missing_images(tree: tuple[Path, Path], tmp_path: Path) -> None:
    reports, baselines = tree
    page = build_report(reports, baselines)
    (reports / "io" / "format_chart.png").unlink()  # a reader copied the page without all its PNGs
    with _browser(tmp_path) as b:
        b.open(page.as_uri())
        assert b.wait_until("document.body.getAttribute('data-images-loaded')") == "4"
        assert "1 image(s) did not load" in b.eval(
            "document.getElementById('img-warning').textContent"
        )

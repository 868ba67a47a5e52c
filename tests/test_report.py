"""Tests of ``mlperf report``: the page, its charts, and the page as a real browser shows it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlperf.baselines import save_records
from mlperf.cli import main as cli_main
from mlperf.report import ReportError, build_report, load_history, markdown_to_html

MACHINE = "test-machine-2c-linux-py311"
CHROMIUM_HINT = "apt-get install -y chromium (or `make chromium`)"
#: Chromium's flags for a headless run without sandbox, GPU or network, and for its output
HEADLESS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
DUMP_DOM = ("--virtual-time-budget=10000", "--dump-dom")


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


def _run(created: str, records: list[dict[str, Any]], failed: bool = False) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "mlperf-run",
        "machine_id": MACHINE,
        "commit": "abc123",
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
    lines = [
        json.dumps(
            _run(
                f"2026-11-2{d}T10:00:00+00:00",
                [_record(A, 1e-3 * (1 + d / 100), seed=d), _record(B, 2e-2, seed=d)],
            )
        )
        for d in range(1, 6)
    ]
    lines.append('{"torn line of a killed run')
    lines.append(json.dumps(latest))
    history.write_text("\n".join(lines) + "\n")
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
    srcs = _srcs(page)
    assert "_mlperf/ratio_to_baseline.png" in srcs
    assert {"_mlperf/trend_compute.png", "_mlperf/trend_io.png"} <= set(srcs)
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


def test_history_skips_torn_lines_and_keeps_the_last_runs(pristine: tuple[Path, Path]) -> None:
    runs, bad = load_history(pristine[0], MACHINE, limit=3)
    assert bad == 1
    assert [r["created"][:10] for r in runs] == ["2026-11-24", "2026-11-25", "2026-11-26"]


def test_self_contained_page_inlines_every_image(tree: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "page.html"
    page = build_report(*tree, output=out, self_contained=True).read_text()
    srcs = _srcs(page)
    assert len(srcs) == 7
    assert all(s.startswith("data:image/png;base64,") for s in srcs)


def test_stale_charts_of_vanished_suites_are_removed(tree: tuple[Path, Path]) -> None:
    reports, baselines = tree
    stale = reports / "_mlperf" / "trend_gone.png"
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"x")
    build_report(reports, baselines)
    assert not stale.exists()


def test_empty_reports_folder_still_makes_a_page(tmp_path: Path) -> None:
    page = build_report(tmp_path / "reports", tmp_path / "baselines", machine=MACHINE).read_text()
    assert "No benchmark run yet" in page and "make bench" in page


def test_unknown_schema_is_refused_with_the_fix(tree: tuple[Path, Path]) -> None:
    reports, baselines = tree
    data = json.loads((reports / "latest.json").read_text())
    (reports / "latest.json").write_text(json.dumps({**data, "schema_version": 2}))
    with pytest.raises(ReportError, match=r"schema_version 2.*make bench"):
        build_report(reports, baselines)


def test_cli_report(tree: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    reports, baselines = tree
    assert cli_main(["report", "--reports", str(reports), "--baselines", str(baselines)]) == 0
    assert "index.html" in capsys.readouterr().out
    assert cli_main(["report", "--reports", str(reports), "--history", "0"]) == 2


def test_markdown_subset() -> None:
    out = markdown_to_html(
        "# Title\n\ntext with `code`\n\n| a | b |\n|---|---|\n| 1 | **2** |\n\n- x\n- y\n"
    )
    assert "<h3>Title</h3>" in out
    assert "<code>code</code>" in out
    assert "<th>a</th>" in out and "<b>2</b>" in out
    assert "<ul><li>x</li><li>y</li></ul>" in out


def test_page_renders_in_headless_chromium(built: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip(f"Chromium is not installed; install it with: {CHROMIUM_HINT}")
    page = built
    cmd = [
        browser,
        *HEADLESS,
        "--disable-extensions",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        *DUMP_DOM,
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    body = re.search(r"<body[^>]*>", proc.stdout)
    assert body, f"chromium printed no DOM (exit {proc.returncode}): {proc.stderr[-2000:]}"
    total = re.search(r'data-images-total="(\d+)"', body.group(0))
    loaded = re.search(r'data-images-loaded="(\d+)"', body.group(0))
    assert total and loaded, f"the page's load handler did not run: {body.group(0)}"
    assert int(total.group(1)) == 7
    assert int(loaded.group(1)) == 7  # every image decoded, from disk, with no server


def test_chromium_notices_missing_images(tree: tuple[Path, Path], tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip(f"Chromium is not installed; install it with: {CHROMIUM_HINT}")
    reports, baselines = tree
    page = build_report(reports, baselines)
    (reports / "io" / "format_chart.png").unlink()  # a reader copied the page without all its PNGs
    cmd = [browser, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", *DUMP_DOM, page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout
    assert 'data-images-loaded="6"' in out
    assert "1 image(s) did not load" in out

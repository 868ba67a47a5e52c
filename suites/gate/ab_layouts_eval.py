"""Measure ``mlperf ab`` across project layouts: caught, false alarms, cost of preparing a side.

For each layout of ``tests/test_ab_layouts.py`` (flat; src with hatchling, editable;
src with setuptools, editable through a meta-path finder; the same installed
non-editable; a setuptools C extension; a src project in a monorepo sub-directory)
one project is made with a planted slowdown of ``--factor`` (default 1.3x) in its
package code, then ``--runs`` times each (default 10):

* ``mlperf ab HEAD~1``: the planted change must be a REGRESSION (caught), the
  unchanged benchmark must not be;
* ``mlperf ab HEAD~2 HEAD~1``: identical code, any REGRESSION is a false alarm.

It also times preparing the sides (checkout, layout, build) cold (empty cache) and
warm (the second run), which is the extra cost ``mlperf ab`` pays per layout.

Run ``python suites/gate/ab_layouts_eval.py`` (``make ab-layouts-eval``); it prints a
markdown table.  Long-running (about 25 min at the defaults); not part of ``make test``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREPARE = """
import sys, time
from pathlib import Path
from mlperf.ab.trees import prepare_sides
t0 = time.perf_counter()
repo = Path(sys.argv[1])
prepare_sides(repo, sys.argv[2], sys.argv[3], repo / ".cache" / "mlperf" / "ab", start=Path.cwd())
print(time.perf_counter() - t0)
"""


def _helpers():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "ab_layouts", ROOT / "tests" / "test_ab_layouts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _prepare_seconds(python: Path, project_dir: Path) -> float:
    top = subprocess.run(
        ["git", "-C", str(project_dir), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    proc = subprocess.run(
        [str(python), "-c", PREPARE, top, "HEAD~1", "HEAD"],
        cwd=project_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(proc.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--factor", type=float, default=1.3)
    parser.add_argument("--only", default=None, help="layout name to run alone")
    args = parser.parse_args(argv)
    m = _helpers()
    rows = []
    for project in m._projects():
        if args.only and project.name != args.only:
            continue
        if project.needs_gcc and shutil.which("gcc") is None:
            rows.append(f"| {project.name} | needs gcc | | | | |")
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f"ab-{project.name}-"))
        where, python = m._make(project, tmp, factor=args.factor)
        top = Path(
            subprocess.run(
                ["git", "-C", str(where), "rev-parse", "--show-toplevel"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        shutil.rmtree(top / ".cache", ignore_errors=True)
        cold = _prepare_seconds(python, where)
        warm = _prepare_seconds(python, where)
        caught = alarms = 0
        times: list[float] = []
        for _ in range(args.runs):
            t0 = time.monotonic()
            _, data = m._ab(python, where, "HEAD~1")
            times.append(time.monotonic() - t0)
            v = m._verdicts(data)
            caught += (
                v.get("test_changed") == "REGRESSION" and v.get("test_unchanged") != "REGRESSION"
            )
            _, data = m._ab(python, where, "HEAD~2", "HEAD~1")
            alarms += "REGRESSION" in m._verdicts(data).values()
        install = "editable" if project.editable else "regular"
        med = sorted(times)[len(times) // 2]
        rows.append(
            f"| {project.name} | {install} | {caught}/{args.runs} | {alarms}/{args.runs} "
            f"| {cold:.2f} s / {warm:.2f} s | {med:.0f} s |"
        )
        print(rows[-1], flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n+{args.factor - 1:.0%} planted in the package code, {args.runs} runs per layout\n")
    print(
        "| layout | install | planted change caught | identical: false alarms "
        "| preparing the sides, cold / warm | one `mlperf ab HEAD~1` (median) |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

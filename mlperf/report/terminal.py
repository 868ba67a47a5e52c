"""What mlperf adds to pytest's terminal summary after a measured session.

Around the verdict table (:func:`mlperf.report.latest.write_terminal`): the warning
that the benchmarks measured an installed copy of the project rather than this
checkout, the error that kept the baselines from being saved, and the benchmarks
that have no baseline when ``--mlperf-require-baseline`` asks for one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlperf.report.latest import write_terminal

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from mlperf.records import RunRecord

__all__ = ["write_summary"]


def write_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config, run: RunRecord
) -> None:
    """Write the verdict table of *run* and the warnings around it to the terminal.

    Parameters
    ----------
    terminalreporter:
        pytest's terminal reporter.
    config:
        The session's configuration (its rootdir and ``--mlperf-no-gate``).
    run:
        The run the gate judged and wrote.
    """
    stale = _installed_elsewhere(config.rootpath)
    if stale:
        name, where = stale
        terminalreporter.write_line(
            f"mlperf: warning: this project's {name} was imported from {where}, outside "
            f"{config.rootpath}: the benchmarks measured an installed copy, not this "
            "checkout's code (install it editable: pip install -e .)",
            yellow=True,
        )
    write_terminal(terminalreporter, run, no_gate=config.getoption("mlperf_no_gate"))
    if run["gate"].get("error"):
        terminalreporter.write_line(f"mlperf: {run['gate']['error']}", red=True, bold=True)
    missing = run["gate"].get("missing") or []
    if missing:
        terminalreporter.write_line(
            f"mlperf: {len(missing)} benchmark(s) have no stored baseline for "
            f"{run['machine_id']} and --mlperf-require-baseline is set: record them on this "
            "machine with `pytest --benchmark-enable --mlperf-save-baseline` (or "
            "`mlperf baseline save`), and commit the baselines folder",
            red=True,
            bold=True,
        )


def _installed_elsewhere(root: Path) -> tuple[str, str] | None:
    """(module, file) of the first of the project's own modules imported from outside *root*."""
    from mlperf.project import discover, find_project_dir, foreign_modules

    project = find_project_dir(root, root)
    if project is None:
        return None
    found = foreign_modules(sorted(discover(project).modules), [str(root)])
    return found[0] if found else None

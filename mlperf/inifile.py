"""Where the project's pytest configuration puts mlperf's folders, for the ``mlperf`` command.

The plugin reads the ini options ``mlperf_baselines`` and ``mlperf_reports`` through
pytest and takes a relative path from the rootdir.  The ``mlperf`` command runs outside
pytest, so it asks pytest's own discovery (the same files in the same order, from the
current directory upwards: ``pytest.ini``, ``.pytest.ini``, ``pyproject.toml``,
``tox.ini``, ``setup.cfg``) and resolves the value the same way; a project that moved
its baselines in its pytest configuration needs no flag on the command line either.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from mlperf.records import DEFAULT_BASELINES_DIR, DEFAULT_REPORTS_DIR

__all__ = ["configured_dir"]

_DEFAULTS = {"baselines": DEFAULT_BASELINES_DIR, "reports": DEFAULT_REPORTS_DIR}


def configured_dir(name: str) -> str:
    """The folder the plugin would use for *name* (``baselines`` or ``reports``).

    The ``mlperf_<name>`` ini option of the pytest configuration found from the current
    directory, relative to its rootdir; without one, the default (``baselines``,
    ``reports``) under the rootdir of a found configuration, else under the current
    directory.
    """
    default = _DEFAULTS[name]
    found = _pytest_setup()
    if found is None:
        return default
    rootdir, inicfg = found
    raw = inicfg.get(f"mlperf_{name}")
    value = str(getattr(raw, "value", raw) or default)  # pytest 9 wraps values, 8 does not
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else rootdir / path)


def _pytest_setup() -> tuple[Path, dict[str, object]] | None:
    """pytest's rootdir and ini values from the current directory, or None without a file."""
    import pytest
    from _pytest.config.findpaths import determine_setup

    offered: dict[str, object] = {
        "inifile": None,
        "override_ini": None,
        "args": [],
        "rootdir_cmd_arg": None,
        "invocation_dir": Path.cwd(),
    }
    accepted = inspect.signature(determine_setup).parameters
    try:  # its keywords changed between pytest 8 and 9: pass those it takes
        rootdir, inipath, inicfg, *_ = determine_setup(
            **{k: v for k, v in offered.items() if k in accepted}  # type: ignore[arg-type]
        )
    except (TypeError, pytest.UsageError):  # an API that moved, or a broken file: the default
        return None
    if inipath is None:
        return None
    return Path(rootdir), dict(inicfg)

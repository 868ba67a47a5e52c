"""pytest plugin of a counting session: each benchmark's call is counted once, under callgrind.

Loaded only into a pytest process that runs under ``valgrind --tool=callgrind`` (see
:func:`mlperf.instructions.count_benchmarks`), as ``-p _mlperf_count`` from a directory
that also holds ``_mlperf_instructions.py`` (a copy of :mod:`mlperf.instructions._client`)
and ``_mlperf_ab_worker.py`` (for the options a measuring session sets aside).  Like
``mlperf ab``'s worker it imports only the standard library, pytest and those copies,
because it also runs inside *another* revision's checkout, whose ``mlperf`` may not
have this module.

A benchmark written with pytest-benchmark's ``benchmark`` fixture gets a stand-in whose
``benchmark(fn, *args)`` and ``benchmark.pedantic(target, ...)`` count one call of the
target after warm-up (:func:`count_call`); one written in pytest-codspeed's style
(marked ``benchmark``, no fixture) has its whole test function counted.  A call that
cannot be counted (its work runs in other processes, or it waits more than it computes)
runs once, uncounted, and its reason goes to ``refused.jsonl`` in the output directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

#: the output directory (set by the launcher: mlperf.instructions._run.OUT_ENV)
OUT_ENV = "MLPERF_COUNT_OUT"
#: a file of the benchmark ids to count, one a line (mlperf.instructions._run.IDS_ENV)
IDS_ENV = "MLPERF_COUNT_IDS"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(OUT_ENV):
        return
    from _mlperf_ab_worker import NEUTRAL_OPTIONS

    for name, value in NEUTRAL_OPTIONS.items():  # pytest-benchmark off, no xdist, no --lf ...
        if hasattr(config.option, name):
            setattr(config.option, name, value)
    config.pluginmanager.register(_Counting(Path(os.environ[OUT_ENV])), "mlperf-counting")


def _whole_call(item: pytest.Item) -> bool:
    return (
        isinstance(item, pytest.Function)
        and item.get_closest_marker("benchmark") is not None
        and "benchmark" not in item.fixturenames
    )


class _Counting:
    def __init__(self, out: Path) -> None:
        self._out = out

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        listed = os.environ.get(IDS_ENV)
        if not listed:
            return
        wanted = set(Path(listed).read_text(encoding="utf-8").split("\n"))
        keep = [item for item in items if item.nodeid in wanted]
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in wanted])
        items[:] = keep

    def pytest_sessionfinish(self) -> None:
        """As ``mlperf ab``'s workers do: name the project's modules that came from elsewhere."""
        own = json.loads(os.environ.get("MLPERF_AB_OWN") or "{}")
        if own.get("prefixes"):
            from _mlperf_ab_project import foreign_modules

            found = foreign_modules(own["prefixes"], own["allowed"], own.get("compiled") or None)
            (self._out / "foreign.json").write_text(json.dumps(found), encoding="utf-8")

    @pytest.hookimpl(tryfirst=True)
    def pytest_terminal_summary(self, exitstatus: int) -> None:
        """Once a clean session has written everything, leave at once, under valgrind.

        Every session fixture is torn down and every count dumped by now; what is left
        is the summary and the interpreter's teardown, both run under valgrind: there,
        hypothesis' summary hook imported all of hypothesis (3.4 s) and the teardown took
        ~1 s (suites/gate's three benchmarks, Intel Xeon VM, 2026-12-06).  A session
        that failed keeps its summary: it is the log that says what went wrong.
        """
        if exitstatus == 0:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

    def _count(self, nodeid: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from _mlperf_instructions import NotCountable, count_call

        try:
            return count_call(fn, *args, label=nodeid, **kwargs).result
        except NotCountable as exc:
            with open(self._out / "refused.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"id": nodeid, "reason": str(exc)}) + "\n")
            return fn(*args, **kwargs)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Any:
        original = pyfuncitem.funcargs.get("benchmark")
        if original is None and _whole_call(pyfuncitem):
            function = pyfuncitem.obj

            def counted(**kwargs: Any) -> Any:
                return self._count(pyfuncitem.nodeid, function, **kwargs)

            pyfuncitem.obj = counted
            try:
                return (yield)
            finally:
                pyfuncitem.obj = function
        if original is None:
            return (yield)
        pyfuncitem.funcargs["benchmark"] = _Proxy(original, self, pyfuncitem.nodeid)
        try:
            return (yield)
        finally:  # pytest-benchmark checks the fixture's type when it makes the report
            pyfuncitem.funcargs["benchmark"] = original


class _Proxy:
    """Takes the place of the ``benchmark`` fixture: one counted call instead of rounds."""

    def __init__(self, original: Any, counting: _Counting, nodeid: str) -> None:
        self._original, self._counting, self._nodeid = original, counting, nodeid

    def __getattr__(self, name: str) -> Any:  # extra_info, group, ... stay the fixture's
        return getattr(self._original, name)

    def __call__(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        # The disabled fixture runs the closure once, so pytest-benchmark sees it used.
        return self._original(
            lambda: self._counting._count(self._nodeid, function, *args, **kwargs)
        )

    def pedantic(
        self,
        target: Any,
        args: Any = (),
        kwargs: Any = None,
        setup: Any = None,
        teardown: Any = None,
        rounds: int = 1,
        warmup_rounds: int = 0,
        iterations: int = 1,
    ) -> Any:
        made = setup() if setup is not None else None
        a, kw = (tuple(made[0]), dict(made[1])) if made else (tuple(args), dict(kwargs or {}))
        try:
            return self(target, *a, **kw)
        finally:
            if teardown is not None:
                teardown(*a, **kw)

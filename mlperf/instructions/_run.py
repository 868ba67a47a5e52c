"""One valgrind process that counts a set of benchmarks: the launcher of the instruction clock.

Used by the plugin (after a measured session, for the benchmarks on this clock) and by
``mlperf ab --clock instructions`` (once per side, in that side's checkout, with its
interpreter and its own code first on the path).  The pytest session under valgrind
loads the counting plugin (:mod:`mlperf.instructions._counting`) from a directory of
standalone copies, so the same copy counts both sides of a comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlperf._standalone import SESSION_ENV, standalone_dir
from mlperf.instructions._callgrind import Count, callgrind_command, callgrind_env, read_counts

__all__ = ["OUT_ENV", "Counts", "count_benchmarks", "session_dir"]

#: the counting session's output directory (``OUT_ENV`` of the standalone counting plugin)
OUT_ENV = "MLPERF_COUNT_OUT"
#: the benchmark ids to count, one a line (``IDS_ENV`` of the counting plugin)
IDS_ENV = "MLPERF_COUNT_IDS"
#: the size that every counting session's arguments and environment are padded to: a
#: session's heap starts where they end, and allocation-heavy code executed up to 2.6 %
#: more or fewer instructions when they differed (suites/gate: -k changed the argv;
#: mlperf ab's two checkouts have paths of other lengths; Intel Xeon VM, 2026-12-05)
PADDED_TO = 65536

_DROP_ENV = (*SESSION_ENV, "PYTHONPATH")  # the caller passes the path it wants


@dataclass
class Counts:
    """What one counting session found.

    Attributes
    ----------
    counts:
        Benchmark id -> its :class:`Count` (instructions, cache misses, estimated cycles).
    refused:
        Benchmark id -> why it was not counted (its work runs elsewhere, it waits).
    returncode:
        pytest's exit status under valgrind (1 when a benchmark failed there).
    log:
        The session's output (pytest's and valgrind's), for when something went wrong.
    foreign:
        With ``MLPERF_AB_OWN`` in the environment (a side of ``mlperf ab``): the project's
        modules the session imported from outside that side, ``(module, file)``.
    """

    counts: dict[str, Count] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    returncode: int = 0
    log: Path | None = None
    foreign: list[tuple[str, str]] = field(default_factory=list)

    def discard_if_clean(self, ids: Sequence[str]) -> bool:
        """Remove the session's directory when it ran clean and gave each of ``ids`` a count
        or a reason; keep it, for its log and dumps, otherwise.  True when removed."""
        clean = (
            self.returncode == 0
            and not self.foreign
            and all(i in self.counts or i in self.refused for i in ids)
        )
        if clean and self.log is not None:
            shutil.rmtree(self.log.parent, ignore_errors=True)
        return clean


def session_dir(parent: Path, prefix: str) -> Path:
    """A new directory under ``parent`` for one counting session.

    Sessions that run at once (two pytest runs in one checkout, the two sides of
    ``mlperf ab``) must not share one: each empties its directory first and reads every
    dump in it at the end, and a stored-gate run read the other's half-written dump.
    """
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def count_benchmarks(
    pytest_args: Sequence[str],
    out_dir: Path,
    *,
    ids: Sequence[str] | None = None,
    python: str,
    cwd: Path,
    pythonpath: Sequence[Path] = (),
    env: dict[str, str] | None = None,
    numba_cache: Path | None = None,
    cache_sim: bool = True,
    timeout: float = 3600.0,
) -> Counts:
    """Run ``python -m pytest *pytest_args`` under callgrind, counting each benchmark's call once.

    Parameters
    ----------
    pytest_args:
        What to collect (paths, ``-k``); the session sets pytest-benchmark, xdist and the
        cache plugin's selections aside, as ``mlperf ab``'s workers do.
    ids:
        Count only these benchmarks; they go to the session in a file, and its arguments
        are their test files, so that counting a subset starts from the same heap.
    out_dir:
        Emptied, then holds callgrind's dumps, ``refused.jsonl`` and ``session.log``.
    python, cwd, pythonpath, env:
        The interpreter, directory, leading path entries and extra environment of the
        session (a side of ``mlperf ab``: its checkout and code).
    numba_cache:
        Where numba keeps what it compiles under valgrind (seconds per kernel there),
        kept between sessions.
    cache_sim:
        Simulate the caches, for the estimated cycles (``mlperf ab`` judges instructions
        only and leaves it off: its instrumented calls then run ~30 % faster).

    Raises
    ------
    mlperf.instructions.ValgrindMissing
        When valgrind is not installed (the message gives the ``apt-get`` line).
    """
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    plugins = standalone_dir(out_dir.parent / "standalone")
    base = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    base.update(env or {})
    full = callgrind_env(out_dir, base, numba_cache=numba_cache)
    full[OUT_ENV] = str(out_dir.resolve())
    full["PYTHONPATH"] = os.pathsep.join(str(p) for p in [plugins, *pythonpath])
    if ids is not None:
        (out_dir / "ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
        full[IDS_ENV] = str((out_dir / "ids.txt").resolve())
        pytest_args = [*pytest_args, *sorted({i.split("::")[0] for i in ids})]
    argv = [
        python,
        "-P",
        "-m",
        "pytest",
        *pytest_args,
        "-p",
        "_mlperf_count",
        "-p",
        "no:codspeed",
        "-q",
        "--no-header",
    ]
    size = sum(len(a) + 1 for a in argv) + sum(len(k) + len(v) + 2 for k, v in full.items())
    full["MLPERF_COUNT_PAD"] = "x" * max(0, PADDED_TO - size - len("MLPERF_COUNT_PAD") - 2)
    log = out_dir / "session.log"
    with open(log, "wb") as fh:
        proc = subprocess.run(
            callgrind_command(
                argv, out_dir, cache_sim=cache_sim, python_version=_version_of(python)
            ),
            cwd=cwd,
            env=full,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    found = Counts(returncode=proc.returncode, log=log)
    for count in read_counts(out_dir):
        found.counts[count.label] = count
    refused = out_dir / "refused.jsonl"
    if refused.is_file():
        for line in refused.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            found.refused[entry["id"]] = entry["reason"]
    foreign = out_dir / "foreign.json"
    if foreign.is_file():
        found.foreign = [tuple(x) for x in json.loads(foreign.read_text(encoding="utf-8"))]
    return found


def _version_of(python: str) -> tuple[int, int]:
    """``(major, minor)`` of the interpreter at ``python`` (an ab side may run another)."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return sys.version_info[0], sys.version_info[1]
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])

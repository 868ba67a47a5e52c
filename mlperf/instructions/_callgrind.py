"""Outside the counted process: launch a command under callgrind, parse what it dumped."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ALLOCATOR",
    "CACHE_OPTIONS",
    "COUNT_METHOD",
    "CYCLE_WEIGHTS",
    "INSTALL_VALGRIND",
    "OUT_DIR_ENV",
    "PROBES",
    "Count",
    "ValgrindMissing",
    "callgrind_command",
    "callgrind_env",
    "left_out",
    "parse_dump",
    "read_counts",
    "require_valgrind",
    "valgrind_available",
]

#: set by :func:`callgrind_env`: where the counted process's dumps go (it may read them at its end)
OUT_DIR_ENV = "MLPERF_CALLGRIND_DIR"
#: the sentence a run without valgrind fails with
INSTALL_VALGRIND = (
    "the instructions clock runs benchmarks under valgrind, which is not on PATH; "
    "install it with `apt-get install valgrind` (Debian/Ubuntu; `dnf install valgrind` on Fedora)"
)
#: Cache geometry simulated for the cycle estimate, the same on every machine (callgrind
#: would otherwise copy the host's, and the estimate would change with the CPU model):
#: 32 KiB 8-way L1 caches, an 8 MiB 16-way last level, 64-byte lines.
CACHE_OPTIONS = ("--cache-sim=yes", "--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64")
#: KCachegrind's cycle estimate, "CEst = Ir + 10 Bm + 10 L1m + 20 Ge + 100 L2m + 100 LLm"
#: (GlobalConfig::knownFormula in kcachegrind's libviews/globalconfig.cpp), restricted to
#: the events collected here (no branch or bus simulation; callgrind has no L2 level).
CYCLE_WEIGHTS: Mapping[str, int] = {
    "Ir": 1,
    **dict.fromkeys(("I1mr", "D1mr", "D1mw"), 10),  # L1 misses
    **dict.fromkeys(("ILmr", "DLmr", "DLmw"), 100),  # last-level misses
}
#: What a count leaves out, by interpreter version: CPython's type-attribute lookup.  Its
#: cost is decided by where objects sit in memory, not by the code under test: the lookup
#: cache is indexed by the *address* of the attribute's name, so two names whose
#: addresses collide evict each other, and each miss walks the MRO (hundreds of
#: instructions instead of ~15).  Addresses move with everything the process did before
#: (its environment's size, its pid, the names in /tmp).  Measured 2026-12-06, Intel Xeon
#: VM, CPython 3.11, the same session command run again and again: suites/gate's pandas
#: benchmark counted 92.76 M to 94.18 M instructions (1.5 % apart: three times the gate's
#: 0.5 % threshold) with the lookup, 89.099 M to 89.115 M (0.02 %) without it; 18,000 generic
#: ``getattr`` calls over 150 classes spread 2.2 % with it, 0 without it
#: (``tests/test_instructions.py``).  The lookup is 3.5 % of that pandas benchmark's
#: instructions; a change that adds lookups still shows in the code around each one.
#: ``_PyType_Lookup`` is exported, so valgrind names it in stripped interpreters too.
#: Exactly one function: ``--toggle-collect`` flips collection on entry, so a nested
#: second one would switch it back on.
LEFT_OUT: Mapping[tuple[int, int], str] = {(3, 11): "_PyType_Lookup", (3, 12): "_PyType_Lookup"}
#: other versions (their lookup was split into several functions): only the lookup's
#: miss path, a static function that valgrind names when the interpreter keeps its
#: symbol table (pyenv and python.org builds do; Debian's stripped python3 does not)
_LEFT_OUT_ELSEWHERE = "find_name_in_mro"
#: What a hash-table probe or a call of glibc's allocator executes depends on where things
#: sit in memory, not on the code under test: a probe runs until it finds its key, and an
#: object hashed by identity (classes, functions, instances without ``__hash__``: every
#: type-dispatch table) hashes its address; the allocator's path through one call depends
#: on the heap's state.  Addresses and heap state move with anything the process did
#: before: the length of a path or of the environment, a change anywhere in the code.
#: Measured 2026-12-06 (Intel Xeon VM, CPython 3.11.7, glibc 2.36): cattrs' own benchmarks
#: (unchanged code) with one ``sys.path`` entry longer counted up to 0.82 % apart
#: (``mlperf ab HEAD`` on them: 2.0 %), all of it in ``_Py_dict_lookup`` and
#: ``_int_malloc``; counted as below, to the instruction the same.
#:
#: The allocator's entry points count a fixed cost per call, with everything they call
#: (their inside, including the size-dependent part: zeroing in ``calloc``, copying in
#: ``realloc``); code that allocates more still counts more.  Each cost is the mean per
#: call in that measurement and in ``tests/test_instructions.py``'s identity-hash workload.
ALLOCATOR: Mapping[str, int] = {
    **dict.fromkeys(("malloc", "calloc", "posix_memalign", "aligned_alloc", "memalign"), 60),
    "realloc": 75,
    "free": 90,
}
#: glibc's functions inside the allocator (``malloc/malloc.c``): what callgrind reports
#: as called from outside it (a tail call from an entry point) counts nothing more
_ALLOCATOR_INSIDE = frozenset(
    {
        *("_int_malloc", "_int_free", "_int_realloc", "_int_memalign", "malloc_consolidate"),
        *("sysmalloc", "systrim", "unlink_chunk", "alloc_perturb", "tcache_init", "arena_get2"),
    }
)
#: Probe loops whose own instructions a count leaves out, as it does the type-attribute
#: lookup (:data:`LEFT_OUT`); what they call (a key's ``__eq__``) counts, and so does the
#: code around each lookup.  Not a fixed cost per call: callgrind counts the jump back to
#: a probe loop's first instruction as another call, so its call count follows the probes.
PROBES = frozenset(
    (
        "_Py_dict_lookup",  # dicts, 3.11-3.13
        "dictkeys_generic_lookup",  # dicts with non-str keys, 3.12+
        "find_empty_slot",  # where a dict insertion lands
        "set_lookkey",
        "set_add_entry",
    )
)
#: part of every count key (:func:`mlperf.baselines.machine.count_key`): counts made by
#: another method are not compared with these.  2: type-attribute lookups left out.
#: 3: hash-table probes left out, the allocator at a fixed cost per call.
COUNT_METHOD = 3
#: thread pools pinned to one thread: valgrind runs threads one at a time, and spinning
#: pool threads would make counts differ between runs
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class ValgrindMissing(RuntimeError):
    """valgrind is not installed (the message says how to install it)."""


def valgrind_available() -> bool:
    """Return True when a ``valgrind`` executable is on ``PATH``."""
    return shutil.which("valgrind") is not None


def require_valgrind() -> str:
    """Return the path of ``valgrind``.

    Raises
    ------
    ValgrindMissing
        When it is not on ``PATH``; the message names ``apt-get install valgrind``.
    """
    path = shutil.which("valgrind")
    if path is None:
        raise ValgrindMissing(f"mlperf: {INSTALL_VALGRIND}")
    return path


def left_out(version: Sequence[int] | None = None) -> str:
    """The interpreter function whose cost a count leaves out (:data:`LEFT_OUT`).

    ``version`` is the counted interpreter's ``(major, minor)``; default: this one's.
    """
    key = tuple(version or sys.version_info)[:2]
    return LEFT_OUT.get((int(key[0]), int(key[1])), _LEFT_OUT_ELSEWHERE)


def callgrind_command(
    argv: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    cache_sim: bool = True,
    python_version: Sequence[int] | None = None,
) -> list[str]:
    """Return ``argv`` prefixed with the valgrind invocation that counts it.

    Nothing is counted until ``count_call`` starts the instrumentation
    (``--instr-atstart=no``: start-up and imports run uninstrumented, ~10x slower
    than natively instead of ~50x), and nothing inside the type-attribute lookup
    (:func:`left_out`; ``--toggle-collect`` sets ``--collect-atstart=no``, so it is set
    back after it).  Dumps go to ``out_dir/callgrind.out.<pid>.<part>``,
    valgrind's messages to ``out_dir/valgrind.<pid>.log``; child processes are not traced.

    Parameters
    ----------
    argv
        The command to count, e.g. ``[sys.executable, "-m", "pytest", ...]``.
    out_dir
        Directory for the dumps; pass the same one to :func:`callgrind_env`.
    cache_sim
        Simulate the caches of :data:`CACHE_OPTIONS`, for :attr:`Count.estimated_cycles`
        (~30 % more CPU time).  Instruction counts are the same either way.

    Raises
    ------
    ValgrindMissing
        When valgrind is not installed.
    """
    out = Path(out_dir).resolve()
    return [
        require_valgrind(),
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--toggle-collect={left_out(python_version)}",
        "--collect-atstart=yes",
        f"--callgrind-out-file={out / 'callgrind.out.%p'}",
        f"--log-file={out / 'valgrind.%p.log'}",
        *(CACHE_OPTIONS if cache_sim else ()),
        *argv,
    ]


#: glibc's allocator, held to paths whose cost does not follow the heap's history: no fast
#: bins (their consolidation walks whatever piled up), a fixed mmap threshold of 64 KiB (the
#: default moves with past frees, and decides whether an array comes from the heap or from
#: mmap), a deep per-thread cache, no trimming.  In one process counting numpy, pandas and
#: numba calls after seven heap histories (2026-12-06, Intel Xeon VM) the counts spread
#: 1.42 / 0.73 / 6.37 % without these and 0.30 / 0.44 / 2.36 % with them.
_STEADY_MALLOC = (
    "glibc.malloc.mxfast=0:glibc.malloc.mmap_threshold=65536:"
    "glibc.malloc.tcache_count=1000:glibc.malloc.trim_threshold=1073741824"
)


def callgrind_env(
    out_dir: str | os.PathLike[str],
    base: Mapping[str, str] | None = None,
    *,
    numba_cache: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """Return the environment for a process launched by :func:`callgrind_command`.

    It names ``out_dir`` (:data:`OUT_DIR_ENV`), fixes the hash seed (string hashes
    decide dict and set layouts, hence counts), makes Python allocate with the C
    library's ``malloc`` instead of its own small-object allocator, and that one with
    the settings of :data:`_STEADY_MALLOC` (below), pins
    thread pools to one thread and,
    with ``numba_cache``, keeps numba's compiled code there (``NUMBA_CACHE_DIR``): a
    compile under valgrind costs seconds per kernel and is paid once per directory.
    valgrind presents the CPU as an AVX2 Haswell whatever the host, so those entries
    are not a native run's.

    ``PYTHONMALLOC=malloc``: what pymalloc spends on one allocation depends on how full
    the pool it allocates from is, hence on everything the process did before the
    counted call.  Measured under callgrind (CPython 3.11, Intel Xeon VM, 2026-12-06),
    after keeping 0 to 2000 unrelated objects alive: the same ``total += i * i`` loop
    over 20,000 ints counted 13.49 M to 14.22 M instructions (5 % apart) under
    pymalloc, 17.92 M in all 15 cases under the C allocator.  Costs that follow
    objects' addresses remain: the type-attribute lookup, which the count leaves out
    (:data:`LEFT_OUT`), and identity hashes (numpy's context variables), a few
    hundredths of a percent (``make instructions-eval`` measures the spread and the
    gate's error rates).

    Instruction counts do not depend on the environment's size; simulated cache misses
    do, a little (addresses move): give both sides of a comparison environments and
    paths of the same length.
    """
    env = dict(os.environ if base is None else base)
    env[OUT_DIR_ENV] = str(Path(out_dir).resolve())
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONMALLOC"] = "malloc"
    env["GLIBC_TUNABLES"] = _STEADY_MALLOC
    env.update(dict.fromkeys(_ONE_THREAD, "1"))
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(Path(numba_cache).resolve())
    return env


# --------------------------------------------------------------------- parse


@dataclass(frozen=True)
class Count:
    """The events callgrind counted for one labelled dump.

    ``events`` maps callgrind's event names to totals: always ``Ir`` (instructions),
    and with the cache simulation ``Dr``, ``Dw`` (data reads, writes), ``I1mr``,
    ``D1mr``, ``D1mw`` (L1 misses), ``ILmr``, ``DLmr``, ``DLmw`` (last-level misses).
    """

    label: str
    events: Mapping[str, int]
    pid: int = 0
    part: int = 0
    path: str = ""
    #: what :data:`ALLOCATOR`'s fixed costs and :data:`PROBES` left out change in ``Ir``
    adjustment: int = 0

    @property
    def instructions(self) -> int:
        """The count the gates judge: callgrind's ``Ir`` with the allocator at its fixed
        cost per call (:data:`ALLOCATOR`) and hash-table probes left out (:data:`PROBES`)."""
        return self.events["Ir"] + self.adjustment

    @property
    def l1_misses(self) -> int | None:
        """L1 misses (instruction fetch, data read, data write); None without cache sim."""
        return _sum(self.events, ("I1mr", "D1mr", "D1mw"))

    @property
    def ll_misses(self) -> int | None:
        """Last-level misses (fetch, read, write); None without cache sim."""
        return _sum(self.events, ("ILmr", "DLmr", "DLmw"))

    @property
    def estimated_cycles(self) -> int | None:
        """``Ir + 10 L1 misses + 100 LL misses`` (:data:`CYCLE_WEIGHTS`), None without a cache sim.

        An access that misses both levels costs 110, as in KCachegrind.  Every counted
        call starts with empty simulated caches (starting the instrumentation flushes
        them), so small calls are dominated by cold misses.
        """
        if self.l1_misses is None:
            return None
        weighted = sum(w * self.events[name] for name, w in CYCLE_WEIGHTS.items())
        return weighted + self.adjustment


def _sum(events: Mapping[str, int], names: tuple[str, ...]) -> int | None:
    return sum(events[n] for n in names) if all(n in events for n in names) else None


_TRIGGER = "desc: Trigger: Client Request: "
_BODY = ("fl=", "fi=", "fe=", "fn=", "ob=", "cob=", "cfi=", "cfl=", "cfn=", "calls=")
_NAMED = re.compile(r"\((\d+)\)(?: (.*))?")
#: callgrind's ``f'2`` (f called from inside f) and gcc's clones (``f.constprop.0``, ``f.cold``)
_SUFFIX = re.compile(r"('\d+|\.(constprop|isra|part|cold)(\.\d+)?)+$")


class _Adjust:
    """Reads a dump's body for :attr:`Count.adjustment`.

    Body lines: ``fn=`` (the function whose lines follow), ``cfn=`` and ``calls=N`` (an
    arc: the next cost line is the callee's inclusive cost over those N calls), cost lines
    ``<position> <Ir> ...``.  Names are compressed: ``(7) name`` the first time, ``(7)``
    after.
    """

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.fn = self.callee = ""
        self.pending = 0
        self.adjustment = 0

    def name(self, spec: str) -> str:
        match = _NAMED.fullmatch(spec.strip())
        if match is None:
            return _SUFFIX.sub("", spec.strip())
        if match[2] is not None:
            self.names[match[1]] = _SUFFIX.sub("", match[2])
        return self.names.get(match[1], "")

    def line(self, line: str) -> None:
        if line.startswith("fn="):
            self.fn = self.name(line[3:])
        elif line.startswith("cfn="):
            self.callee = self.name(line[4:])
        elif line.startswith("calls="):
            self.pending = int(line[6:].split()[0])
        elif line[:1].isdigit() or line[:1] in "+-*":
            fields = line.split()
            ir = int(fields[1]) if len(fields) > 1 else 0
            if self.pending:  # an arc's inclusive cost
                calls, self.pending = self.pending, 0
                outside = self.fn not in ALLOCATOR and self.fn not in _ALLOCATOR_INSIDE
                if outside and self.callee in ALLOCATOR:
                    self.adjustment += calls * ALLOCATOR[self.callee] - ir
                elif outside and self.callee in _ALLOCATOR_INSIDE:
                    self.adjustment -= ir
            elif self.fn in PROBES:  # a probe's own instructions
                self.adjustment -= ir


def parse_dump(path: str | os.PathLike[str]) -> Count:
    """Parse one callgrind output file into a :class:`Count`.

    Reads the header (``pid``, ``part``, ``events``, the trigger line that carries the
    label), the ``totals:`` line (``summary:`` in files that lack it), which is what
    ``callgrind_annotate`` prints as PROGRAM TOTALS, and the body for what the count
    leaves out or fixes (:attr:`Count.adjustment`).  A dump not made by a client request
    (the one at program exit) gets the label ``""``.

    Raises
    ------
    ValueError
        When the file is not a callgrind output file or lacks its events or totals.
    """
    path = Path(path)
    header: dict[str, str] = {}
    label = ""
    totals = summary = None
    body = _Adjust()
    with path.open(encoding="utf-8", errors="replace") as lines:
        first = next(lines, "")
        if not first.startswith(("# callgrind format", "version:")):
            raise ValueError(f"{str(path)!r} is not a callgrind output file (first line {first!r})")
        for line in lines:
            if line[:1].isdigit() or line[:1] in "+-*" or line.startswith(_BODY):
                body.line(line)  # cost and call lines: the bulk of the file
            elif line.startswith(_TRIGGER):
                label = line[len(_TRIGGER) :].rstrip("\n")
            elif line.startswith("totals:"):
                totals = line.split()[1:]
            elif line.startswith("summary:"):
                summary = line.split()[1:]
            elif ": " in line and not line.startswith("desc:"):
                key, _, value = line.partition(": ")
                header.setdefault(key, value.strip())
    names = header.get("events", "").split()
    values = totals if totals is not None else summary
    if not names or values is None:
        raise ValueError(f"{str(path)!r} has no 'events:' or 'totals:' line: an incomplete dump?")
    values = values + ["0"] * (len(names) - len(values))  # trailing zeros may be left out
    events = {name: int(v) for name, v in zip(names, values, strict=False)}
    pid, part = int(header.get("pid", 0)), int(header.get("part", 0))
    return Count(label, events, pid, part, str(path), body.adjustment)


_DUMP_NAME = re.compile(r"callgrind\.out\.(\d+)(?:\.(\d+))?$")


def read_counts(out_dir: str | os.PathLike[str], *, labelled: bool = True) -> list[Count]:
    """Parse every dump in ``out_dir``, ordered by process id and part.

    With ``labelled`` (the default) only the dumps made by ``count_call`` are kept,
    not the one each process writes at exit.
    """
    found = []
    for path in Path(out_dir).iterdir():
        match = _DUMP_NAME.match(path.name)
        if match:
            found.append((int(match[1]), int(match[2] or 0), path))
    counts = [parse_dump(path) for _, _, path in sorted(found)]
    return [c for c in counts if c.label] if labelled else counts

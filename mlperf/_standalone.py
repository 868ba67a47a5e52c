"""The standalone files a pytest process of *another* checkout loads, copied into one folder.

``mlperf ab``'s workers and the counting sessions of the instruction clock run pytest
inside a revision whose ``mlperf`` may be older (or absent), so what they load from
mlperf must not import it: these modules use only the standard library and pytest,
and are copied under their own names into one directory put first on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["FILES", "SESSION_ENV", "standalone_dir"]

_HERE = Path(__file__).parent
#: source file -> the name it is loaded by
FILES = {
    _HERE / "ab" / "_mlperf_ab_worker.py": "_mlperf_ab_worker.py",  # -p _mlperf_ab_worker
    _HERE / "project.py": "_mlperf_ab_project.py",  # the worker's provenance guard
    _HERE / "instructions" / "_client.py": "_mlperf_instructions.py",  # count_call
    _HERE / "instructions" / "_counting.py": "_mlperf_count.py",  # -p _mlperf_count
}

#: what the launching pytest session (and its xdist worker) sets for itself; a pytest
#: started for another checkout must not inherit it
SESSION_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTEST_CURRENT_TEST",
)


def standalone_dir(dest: Path) -> Path:
    """Copy :data:`FILES` into *dest* (only what changed) and return it, resolved."""
    dest.mkdir(parents=True, exist_ok=True)
    for source, name in FILES.items():
        target = dest / name
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            # whole or not at all: another session may be importing it right now.  The
            # partial copy's name is unique to this call: mlperf ab prepares its two sides
            # in two threads of one process, which a pid alone would not tell apart.
            fd, partial = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=dest)
            os.close(fd)
            try:
                shutil.copyfile(source, partial)
                os.replace(partial, target)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
    return dest.resolve()

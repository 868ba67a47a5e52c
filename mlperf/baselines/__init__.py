"""Machine identity and versioned, per-machine baseline files.

Layout: ``<baselines>/<machine-id>/<suite>.json``.  A file holds, per benchmark,
the summary *and* the round samples of CPU and wall time (the gate's rank test
needs samples, not just a median) plus the peak memory of one extra round.
Writes are atomic (temp file + rename) under an exclusive lock, so several
processes recording different benchmarks of one suite lose nothing.

The package: :mod:`~mlperf.baselines.machine` (who measured: machine id, count key,
package versions, commit), :mod:`~mlperf.baselines.schema` (one file: schema version,
entry checks, reading ours or pytest-benchmark's JSON) and
:mod:`~mlperf.baselines.store` (a machine's files: paths, loading, locked saves).
Every public name is re-exported here: import from :mod:`mlperf.baselines`.
"""

from __future__ import annotations

from mlperf.baselines.machine import TRACKED_PACKAGES as TRACKED_PACKAGES
from mlperf.baselines.machine import count_key as count_key
from mlperf.baselines.machine import (
    current_commit,
    environment,
    id_of,
    machine_id,
    machine_info,
)
from mlperf.baselines.schema import RECORD_COMMAND as RECORD_COMMAND
from mlperf.baselines.schema import (
    SCHEMA_VERSION,
    BaselineError,
    entry_problem,
    fix_hint,
    from_pytest_benchmark,
    load_file,
)
from mlperf.baselines.store import MAX_SAMPLES as MAX_SAMPLES
from mlperf.baselines.store import (
    baseline_path,
    entry_of,
    known_elsewhere,
    load_machine,
    save_records,
    suite_of,
)
from mlperf.baselines.store import thin as thin

# ``name as name`` above: public names that other mlperf modules import from here,
# left out of __all__ as they were before the split.
__all__ = [
    "SCHEMA_VERSION",
    "BaselineError",
    "baseline_path",
    "current_commit",
    "entry_of",
    "entry_problem",
    "environment",
    "fix_hint",
    "from_pytest_benchmark",
    "id_of",
    "known_elsewhere",
    "load_file",
    "load_machine",
    "machine_id",
    "machine_info",
    "save_records",
    "suite_of",
]

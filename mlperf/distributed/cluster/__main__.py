"""``python -m mlperf.distributed.cluster up|down --dir DIR``."""

import sys

from mlperf.distributed.cluster import main

if __name__ == "__main__":
    sys.exit(main())

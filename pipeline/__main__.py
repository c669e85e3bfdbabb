"""``python -m pipeline``."""

import sys

from pipeline.entry.cli import main

if __name__ == "__main__":  # guard: decode workers are spawned processes
    sys.exit(main())

"""Decoding, frame features and temporal descriptors (the algorithms layer).

Reproducible numerics: MKL (torch's CPU BLAS) may otherwise use fewer threads
than asked when the machine is loaded (``MKL_DYNAMIC``) and sum in another
order, so the same inputs would give different last bits from run to run.
These are set before torch loads MKL; a caller's own setting wins.
"""

import os as _os

_os.environ.setdefault("MKL_DYNAMIC", "FALSE")
_os.environ.setdefault("MKL_CBWR", "AUTO")

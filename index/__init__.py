"""FAISS index, offset re-ranking and query expansion (the algorithms layer).

Imports :mod:`extractors` first so that its reproducible-numerics settings for
MKL apply before torch loads.
"""

import extractors as _extractors  # noqa: F401

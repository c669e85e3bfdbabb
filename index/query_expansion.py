"""Query expansion on TMK descriptors (spec section 4).

``aqe``: average query expansion.  The top ``n1`` database descriptors of a
first search are phase-shifted by their own best offset (aligning them with
the query's time axis) and averaged with the query.

``don``: ``aqe`` minus the mean of the top ``n2`` (unshifted) database
descriptors ("database-side negative").

Two semantics are available:

* ``mode="corrected"`` (default): the average divides by the number of
  descriptors actually averaged, ``1 + min(n1, N)``, and ``don`` subtracts
  the true mean of the ``min(n2, N)`` descriptors it summed.
* ``mode="reference"``: reproduces the published numbers: divide by
  ``n1 + 1`` and by the constant ``n2`` (2000) whatever the database size.

Descriptors here are the raw (un-normalised) ``(P, 2m, d)`` TMK descriptors;
normalisation happens at scoring time.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from extractors.temporal.tmk import TMK

Mode = Literal["corrected", "reference"]


def rank_descending(scores: np.ndarray | torch.Tensor) -> np.ndarray:
    """Indices sorting ``scores (N,)`` by descending value, ties in index order."""
    s = np.asarray(scores.cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    return np.argsort(-s, kind="stable")


def average_query_expansion(model: TMK, query: torch.Tensor, database: torch.Tensor,
                            scores: np.ndarray | torch.Tensor,
                            offsets: np.ndarray | torch.Tensor, n1: int = 10,
                            mode: Mode = "corrected") -> torch.Tensor:
    """Expanded query descriptor.

    Args:
        model: the TMK that produced the descriptors.
        query: ``(P, 2m, d)`` raw query descriptor.
        database: ``(N, P, 2m, d)`` raw database descriptors.
        scores: ``(N,)`` best score of the query against each database item.
        offsets: ``(N,)`` best offset of each pair, in 1/15 s (``t_q - t_db``).
        n1: number of top database items averaged in.
        mode: ``corrected`` or ``reference`` (see module docstring).

    Returns:
        ``(P, 2m, d)`` raw expanded descriptor.
    """
    _check_mode(mode)
    top = rank_descending(scores)[:n1]
    off = torch.as_tensor(np.asarray(offsets)[top], dtype=torch.float64)
    shifted = model.shift(database[torch.as_tensor(top)], off)
    denom = (n1 + 1) if mode == "reference" else (len(top) + 1)
    return (query.float() + shifted.sum(0)) / denom


def don_query_expansion(model: TMK, query: torch.Tensor, database: torch.Tensor,
                        scores: np.ndarray | torch.Tensor,
                        offsets: np.ndarray | torch.Tensor, n1: int = 10, n2: int = 2000,
                        mode: Mode = "corrected") -> torch.Tensor:
    """``aqe`` minus the mean of the top ``n2`` unshifted database descriptors.

    Same arguments as :func:`average_query_expansion`; returns ``(P, 2m, d)``.
    """
    _check_mode(mode)
    expanded = average_query_expansion(model, query, database, scores, offsets, n1, mode)
    top = rank_descending(scores)[:n2]
    denom = n2 if mode == "reference" else len(top)
    return expanded - database[torch.as_tensor(top)].float().sum(0) / denom


def expand_query(kind: str, model: TMK, query: torch.Tensor, database: torch.Tensor,
                 scores: np.ndarray | torch.Tensor, offsets: np.ndarray | torch.Tensor,
                 n1: int = 10, n2: int = 2000, mode: Mode = "corrected") -> torch.Tensor:
    """Dispatch on ``kind`` in ``{"", "none", "aqe", "don"}``; ``""``/``none`` returns the query."""
    if kind in ("", "none"):
        return query
    if kind == "aqe":
        return average_query_expansion(model, query, database, scores, offsets, n1, mode)
    if kind == "don":
        return don_query_expansion(model, query, database, scores, offsets, n1, n2, mode)
    raise ValueError(f"unknown query expansion {kind!r}; use '', 'aqe' or 'don'")


def _check_mode(mode: str) -> None:
    if mode not in ("corrected", "reference"):
        raise ValueError(f"query-expansion mode must be 'corrected' or 'reference', got {mode!r}")

"""Query expansion: reference vs corrected semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.temporal.tmk import TMK
from index.query_expansion import average_query_expansion, don_query_expansion, expand_query
from tests.conftest import unit_rows


@pytest.fixture
def setup(rng):
    model = TMK.preset("lamv")
    q = model.descriptor(unit_rows(rng, 50, 16), np.arange(50))
    db = torch.stack([model.descriptor(unit_rows(rng, 60, 16), np.arange(60)) for _ in range(3)])
    scores = np.array([0.2, 0.9, 0.5])
    offsets = np.array([3.0, -7.0, 11.0])
    return model, q, db, scores, offsets


def test_aqe_averages_shifted_top_items(setup):
    model, q, db, scores, offsets = setup
    out = average_query_expansion(model, q, db, scores, offsets, n1=2)
    expected = (q + model.shift(db[1], -7.0) + model.shift(db[2], 11.0)) / 3
    torch.testing.assert_close(out, expected)


def test_reference_mode_divides_by_constants(setup):
    model, q, db, scores, offsets = setup
    ref = average_query_expansion(model, q, db, scores, offsets, n1=10, mode="reference")
    fixed = average_query_expansion(model, q, db, scores, offsets, n1=10)
    torch.testing.assert_close(ref * 11, fixed * 4)  # 1 + 3 items averaged
    don_ref = don_query_expansion(model, q, db, scores, offsets, n1=10, n2=2000, mode="reference")
    don_fixed = don_query_expansion(model, q, db, scores, offsets, n1=10, n2=2000)
    torch.testing.assert_close(don_ref, ref - db.sum(0) / 2000)
    torch.testing.assert_close(don_fixed, fixed - db.mean(0))


def test_dispatch_and_errors(setup):
    model, q, db, scores, offsets = setup
    assert expand_query("", model, q, db, scores, offsets) is q
    with pytest.raises(ValueError, match="unknown query expansion"):
        expand_query("dba", model, q, db, scores, offsets)
    with pytest.raises(ValueError, match="mode"):
        expand_query("aqe", model, q, db, scores, offsets, mode="published")


def test_background_normalisation_is_a_per_query_shift():
    from index.rerank import background_normalised

    s = np.array([0.9, 0.5, 0.2])
    np.testing.assert_allclose(background_normalised(s, np.array([0.1, 0.3])), s - 0.3)
    np.testing.assert_allclose(background_normalised(s, np.array([])), s)

"""Compact descriptors (index/quantise.py) and the store that memory-maps them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from index.quantise import bytes_per_item, decode, encode
from pipeline.store.descriptors import DescriptorStore


@pytest.mark.parametrize("precision,tol", [("float32", 0.0), ("float16", 1e-3), ("int8", 1 / 254 + 1e-7)])
def test_every_value_comes_back_within_half_a_step_of_its_row(precision, tol):
    x = np.random.default_rng(1).standard_normal((5, 4, 32, 64)).astype(np.float32)
    x[0, 1, 3] = 0.0  # a zero row (TMK's sine row of frequency 0) stays exactly zero
    if precision != "float16":  # float16 loses relative precision below 6e-5 (subnormals); int8's scales do not
        x[1] *= 1e-6
    enc = encode(x, precision)
    y = decode(enc.codes, enc.scales)
    assert y.dtype == np.float32 and y.shape == x.shape
    row_max = np.abs(x).max(axis=-1, keepdims=True)
    assert np.all(np.abs(y - x) <= tol * np.maximum(row_max, 1e-30) + 1e-12)
    assert np.all(y[0, 1, 3] == 0)
    assert enc.codes.nbytes + (0 if enc.scales is None else enc.scales.nbytes) == 5 * bytes_per_item(x.shape[1:],
                                                                                                   precision)
    with pytest.raises(ValueError, match="precision must be one of float32, float16, int8"):
        encode(x, "int4")


def test_stored_bytes_of_the_re_ranking_descriptor():
    # TMK LAMV: 4 periods x 2 x 16 frequencies x 256 dimensions
    assert bytes_per_item((4, 32, 256), "float32") == 128 * 1024
    assert bytes_per_item((4, 32, 256), "float16") == 64 * 1024
    assert bytes_per_item((4, 32, 256), "int8") == 32 * 1024 + 128 * 4


def test_the_store_reads_candidate_rows_from_memory_maps_in_every_precision(tmp_path):
    import h5py

    from pipeline.store.descriptors import DESCRIPTORS_SCHEMA, DESCRIPTORS_VERSION

    rng = np.random.default_rng(2)
    full = rng.standard_normal((7, 2, 8, 16)).astype(np.float32)
    for precision in ("float32", "float16", "int8"):
        files = []
        for s, rows in enumerate((range(0, 4), range(4, 7))):
            p = tmp_path / precision / f"shard-{s}.h5"
            p.parent.mkdir(exist_ok=True)
            enc = encode(full[list(rows)], precision)
            with h5py.File(p, "w") as f:
                f.attrs.update({"schema": DESCRIPTORS_SCHEMA, "schema_version": DESCRIPTORS_VERSION,
                                "model": "{}", "precision": precision})
                f.create_dataset("video_ids", data=np.array([f"v{i}" for i in rows], dtype=object),
                                 dtype=h5py.string_dtype())
                f.create_dataset("descriptors", data=enc.codes)
                if enc.scales is not None:
                    f.create_dataset("scales", data=enc.scales)
                f.create_dataset("mean_frames", data=full[list(rows), 0, 0])
                f.create_dataset("n_frames", data=np.arange(len(rows)))
            files.append(p)
        store = DescriptorStore(files)
        got = store.get(["v6", "v0", "v5", "v0"])  # across files, out of order, repeated
        assert isinstance(got, torch.Tensor) and got.shape == (4, 2, 8, 16)
        want = full[[6, 0, 5, 0]]
        tol = {"float32": 0, "float16": 2e-3, "int8": 2e-2}[precision]
        assert np.abs(got.numpy() - want).max() <= tol * np.abs(want).max() + 1e-7, precision
        codes, _ = store._mapped(0)
        assert isinstance(codes, np.memmap)  # rows are read from the file, not the whole shard
        with pytest.raises(KeyError, match="no descriptor for video 'nope'"):
            store.get(["v1", "nope"])


def test_int8_tmk_files_leave_out_the_rows_that_are_always_zero(tmp_path):
    """TMK's sine row of frequency 0 is zero in every video: an int8 file does not store it (the
    re-ranking descriptor fits 32 KiB), and the store puts it back."""
    from extractors.temporal.tmk import TMK
    from pipeline.store.descriptors import DescribedVideos, mean_frame_component, write_descriptors

    model = TMK.preset("lamv")
    rng = np.random.default_rng(3)
    fvs = []
    for n in (300, 500):
        x = rng.standard_normal((n, 256)).astype(np.float32)
        fvs.append(model.descriptor(x / np.linalg.norm(x, axis=1, keepdims=True), np.arange(n) * 1.0).numpy())
    fv = np.stack(fvs)
    assert fv.shape == (2, 4, 32, 256) and np.all(fv[:, :, 0] == 0)  # (P, 2m, d); row 0: sine of frequency 0
    means = mean_frame_component(model, torch.from_numpy(fv)).numpy()
    p = write_descriptors(tmp_path / "d.h5", DescribedVideos(["a", "b"], fv, means, np.array([300, 500]),
                                                             np.array([20.0, 33.3])), "tmk_lamv", {}, "int8")
    import h5py

    with h5py.File(p, "r") as f:
        per_video = f["descriptors"][0].nbytes + f["scales"][0].nbytes
    assert per_video == 4 * 31 * 256 + 4 * 31 * 4 <= 32 * 1024
    got = DescriptorStore([p]).get(["b", "a"]).numpy()
    assert got.shape == (2, 4, 32, 256) and np.all(got[:, :, 0] == 0)
    np.testing.assert_allclose(got, fv[[1, 0]], atol=np.abs(fv).max() / 254 + 1e-7)

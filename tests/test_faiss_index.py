"""FAISS indexes from factory strings (index/faiss_index.py) and index directories on disk."""

from __future__ import annotations

import numpy as np
import pytest

from index.faiss_index import (
    IndexFactoryError,
    SearchParams,
    VideoIndex,
    auto_factory,
    build_faiss,
    delta_index,
    ivf_lists,
    resolve_factory,
    training_sample,
    updatable,
    update_faiss,
)
from pipeline.config.load import load_config
from pipeline.config.schema import ConfigError
from pipeline.store.index_files import (
    DELTA_FILE,
    INDEX_FILE,
    IVFDATA_FILE,
    IndexFileError,
    read_index,
    read_meta,
    write_index,
    write_layered_index,
)


def unit(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def near(x: np.ndarray, seed: int = 1, noise: float = 0.05) -> np.ndarray:
    """Noisy copies of ``x`` (what a query's mean frame is to its copy's)."""
    y = x + noise * np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def test_auto_picks_exact_search_for_small_corpora_and_compressed_ivf_for_large_ones():
    assert auto_factory(49_999) == "Flat"
    assert auto_factory(100_000) == f"IVF{ivf_lists(100_000)},Flat" == "IVF1264,Flat"
    assert auto_factory(1_000_000) == "IVF4000,SQ8"
    assert resolve_factory("HNSW32", 10) == "HNSW32" and resolve_factory("auto", 10) == "Flat"
    assert ivf_lists(100) == 2  # at least 39 training vectors per list


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat", "IVF16,SQ8", "HNSW16", "PQ8x4", "OPQ8,IVF16,PQ8x4",
                                     "IVF16,PQ8x4fs"])
def test_every_factory_finds_the_copies_under_their_ids(factory):
    x = unit(2000)
    ids = np.arange(2000, dtype=np.int64) * 7 + 3  # ids that are not row numbers
    index = build_faiss(x, factory, ids=ids, train_size=1000)
    vi = VideoIndex(index, [f"v{i}" for i in ids], faiss_ids=ids)
    _, names = vi.search(near(x[:50]), 5, SearchParams(nprobe=16, ef_search=64))
    found = np.mean([names[i][0] == f"v{ids[i]}" for i in range(50)])
    assert found >= (1.0 if factory in ("Flat", "IVF16,Flat", "IVF16,SQ8") else 0.9), factory


def test_nprobe_and_ef_search_reach_the_index_through_its_wrappers():
    x = unit(4000, seed=2)
    exact = VideoIndex(build_faiss(x, "Flat"), [str(i) for i in range(4000)])
    q = unit(200, seed=3)  # far from everything: the hard case for approximate search
    _, truth = exact.search(q, 1)
    for factory, weak, strong in (("IVF64,Flat", SearchParams(nprobe=1), SearchParams(nprobe=64)),
                                  ("HNSW8", SearchParams(ef_search=1), SearchParams(ef_search=256))):
        vi = VideoIndex(build_faiss(x, factory), [str(i) for i in range(4000)])
        recall = {}
        for name, p in (("weak", weak), ("strong", strong)):
            _, got = vi.search(q, 1, p)
            recall[name] = np.mean([a[0] == b[0] for a, b in zip(got, truth, strict=True)])
        assert recall["strong"] >= 0.97 and recall["weak"] < recall["strong"] - 0.1, (factory, recall)


def test_updates_by_id_where_the_index_can_remove_and_says_where_it_cannot():
    x = unit(600, seed=4)
    for factory, can in (("Flat", True), ("IVF4,SQ8", True), ("PQ4x4", True), ("HNSW16", False)):
        index = build_faiss(x[:500], factory)
        assert updatable(index) is can, factory
        if not can:
            continue
        update_faiss(index, np.arange(0, 100, dtype=np.int64), x[500:], np.arange(500, 600, dtype=np.int64))
        vi = VideoIndex(index, [str(i) for i in range(100, 600)], faiss_ids=np.arange(100, 600))
        _, names = vi.search(x[[0, 550]], 1, SearchParams(nprobe=4))
        assert names[0][0] != "0" and (names[1][0] == "550" or factory == "PQ4x4"), factory
        assert index.ntotal == 500


def test_training_uses_a_fixed_sample_and_refuses_too_few_vectors():
    x = unit(1000, seed=5)
    s = training_sample(x, 100)
    assert len(s) == 100 and np.array_equal(s, training_sample(x, 100))
    assert training_sample(x, 5000) is x
    with pytest.raises(IndexFactoryError, match="64 inverted lists needs at least 64 training vectors; the corpus "
                                                "has 50"):
        build_faiss(x[:50], "IVF64,Flat")
    with pytest.raises(IndexFactoryError, match="index factory 'IVF16,Bogus'"):
        build_faiss(x, "IVF16,Bogus")
    with pytest.raises(IndexFactoryError, match="cannot index 32-d vectors"):
        build_faiss(x, "PQ7")  # 32 is not a multiple of 7


def test_on_disk_inverted_lists_are_checked_and_memory_mapped(tmp_path):
    x = unit(3000, seed=6)
    ids = [f"v{i}" for i in range(3000)]
    index = build_faiss(x, "IVF32,SQ8")
    d = write_index(tmp_path / "ix", index, ids, {"index_type": "IVF32,SQ8"}, on_disk=True)
    assert (d / IVFDATA_FILE).stat().st_size > 3000 * 32  # the codes live in the lists file
    assert (d / "index.faiss").stat().st_size < (d / IVFDATA_FILE).stat().st_size
    moved = tmp_path / "moved"
    d.rename(moved)  # a published version is read from wherever it lies
    vi = read_index(moved)
    _, names = vi.search(near(x[:20]), 1, SearchParams(nprobe=32))
    assert [n[0] for n in names] == ids[:20]
    del vi  # (truncating a file a process has mapped would kill it with SIGBUS: writers always rename)
    raw = bytearray((moved / IVFDATA_FILE).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (moved / "damaged").write_bytes(bytes(raw))
    (moved / "damaged").replace(moved / IVFDATA_FILE)
    with pytest.raises(IndexFileError, match=r"index.ivfdata: content does not match the checksum"):
        read_index(moved)
    write_index(moved, build_faiss(x, "Flat"), ids, {"index_type": "Flat"})  # rewritten in memory
    assert not (moved / IVFDATA_FILE).exists() and read_index(moved).index.ntotal == 3000


def test_index_settings_are_validated_with_a_way_forward():
    with pytest.raises(ConfigError, match=r"index.type was replaced by index.factory"):
        load_config("demo", "index.type=flat")
    with pytest.raises(ConfigError, match=r"'index.factory' must be auto or a FAISS index_factory string"):
        load_config("demo", "index.factory=IVF 4, Flat")
    with pytest.raises(ConfigError, match=r"'index.on_disk' keeps IVF inverted lists on disk"):
        load_config("demo", "index.factory=HNSW32;index.on_disk=true")
    assert load_config("demo", "index.factory=IVF1024,PQ32x4fs;index.ef_search=64").index.ef_search == 64


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat", "HNSW16"])
def test_a_layered_index_answers_as_one_index_over_its_live_videos(tmp_path, factory):
    """Base less removed plus delta returns what one index over exactly the live videos returns, and
    never a removed video; the base files are the previous ones (hard-linked), not rewritten."""
    x, extra = unit(400, seed=3), unit(60, seed=4)
    names = [f"b{i}" for i in range(400)]
    base_dir = write_index(tmp_path / "v1", build_faiss(x, factory), names, {"index_type": factory})
    removed = np.arange(0, 400, 13)  # 31 base videos gone (or changed: a changed one is re-added below)
    fids = np.arange(400, 460)
    write_layered_index(tmp_path / "v2", read_meta(base_dir), delta_index(extra, fids), [f"d{i}" for i in range(60)],
                        fids, removed, {"index_type": factory})
    assert (tmp_path / "v2" / INDEX_FILE).samefile(base_dir / INDEX_FILE)
    idx = read_index(tmp_path / "v2")
    live = np.setdiff1d(np.arange(400), removed)
    every = np.vstack([x, extra])
    assert len(idx) == len(live) + 60 and idx.live()[0] == [f"b{i}" for i in live] + [f"d{i}" for i in range(60)]
    q = np.vstack([near(x[:40], seed=5), near(extra[:20], seed=6)])
    scores, got = idx.search(q, 10, SearchParams(nprobe=16, ef_search=256))
    exact = build_faiss(every[np.r_[live, np.arange(400, 460)]], "Flat", np.r_[live, np.arange(400, 460)])
    want_s, want_i = exact.search(q, 10)
    label = {**{i: f"b{i}" for i in range(400)}, **{400 + i: f"d{i}" for i in range(60)}}
    assert got == [[label[int(i)] for i in row] for row in want_i]
    assert np.allclose(scores, want_s, atol=1e-5)
    assert not {f"b{i}" for i in removed} & {n for row in got for n in row}
    # a copy of a removed video finds no trace of it, a copy of a delta video finds it first
    assert [row[0] for row in got[40:]] == [f"d{i}" for i in range(20)]
    _, top = idx.search(near(x[removed[:5]], seed=7), 1)
    assert all(row[0] not in {f"b{i}" for i in removed} for row in top)
    # folding the layers gives one plain index with the same answers (the refresh's merge)
    if factory != "HNSW16":
        live_ids, live_fids = idx.live()
        plain = VideoIndex(idx.folded(), live_ids, faiss_ids=live_fids)
        assert plain.search(q, 10, SearchParams(nprobe=16))[1] == got


def test_a_damaged_delta_or_inconsistent_layers_are_refused_naming_the_file(tmp_path):
    x = unit(50, seed=8)
    base = write_index(tmp_path / "v1", build_faiss(x, "Flat"), [f"b{i}" for i in range(50)], {"index_type": "Flat"})
    d = write_layered_index(tmp_path / "v2", read_meta(base), delta_index(unit(5, seed=9), np.arange(50, 55)),
                            [f"d{i}" for i in range(5)], np.arange(50, 55), np.array([3]), {"index_type": "Flat"})
    assert read_meta(d).attrs["schema_version"] == 2 and read_meta(base).attrs["schema_version"] == 1
    raw = bytearray((d / DELTA_FILE).read_bytes())
    raw[-8] ^= 0xFF
    (d / DELTA_FILE).write_bytes(bytes(raw))
    with pytest.raises(IndexFileError, match=r"delta\.faiss: content does not match the checksum"):
        read_index(d)
    bad = write_layered_index(tmp_path / "v3", read_meta(base), None, [], np.zeros(0, np.int64), np.array([99]),
                              {"index_type": "Flat"})
    with pytest.raises(IndexFileError, match=r"meta\.h5: removed ids that the base index does not hold"):
        read_index(bad)

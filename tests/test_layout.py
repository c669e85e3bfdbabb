"""Every output path hashes everything upstream of it (no stale reuse after a settings change)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.load import load_config
from pipeline.store.layout import Layout
from tests.test_refresh import clip, overrides


@pytest.fixture
def corpus(tmp_path):
    for i in range(3):
        clip(tmp_path / "data" / "videos" / f"v{i}.mp4", seed=40 + i, seconds=1.0)
    return tmp_path


def paths(lay: Layout) -> dict[str, Path]:
    return {"features": lay.features_dir, "shard": lay.feature_shard_dir(0),
            "descriptors": lay.descriptor_path("tmk_lamv", 0), "index": lay.index_dir,
            "search": lay.search_dir("tmk_lamv")}


@pytest.mark.parametrize("change", [
    "features.pca=trained", "features.image_area=20000", "features.weights=imagenet", "features.seed=3",
    "features.precision=bfloat16", "features.level=28", "features.dtype=float32", "features.remove_black_bars=true",
    "features.extractor=mvlad", "features.extractor=pdqf", "features.extractor=selfsup",
])
def test_a_feature_setting_changes_every_path_below_it(corpus, change):
    base = Layout(load_config("folder", overrides(corpus)))
    other = Layout(load_config("folder", overrides(corpus) + ";" + change))
    a, b = paths(base), paths(other)
    assert all(a[k] != b[k] for k in a), {k: (a[k], b[k]) for k in a if a[k] == b[k]}


def test_weights_from_a_file_are_identified_by_the_file(corpus, tmp_path):
    w = tmp_path / "w.pth"
    w.write_bytes(b"one")
    first = Layout(load_config("folder", overrides(corpus) + f";features.weights={w}")).features_dir
    w.write_bytes(b"other weights")
    assert Layout(load_config("folder", overrides(corpus) + f";features.weights={w}")).features_dir != first


def test_model_index_and_search_settings_change_only_what_they_affect(corpus):
    base = paths(Layout(load_config("folder", overrides(corpus))))
    m = paths(Layout(load_config("folder", overrides(corpus) + ";models.tmk_lamv.m=8")))
    assert m["features"] == base["features"] and m["descriptors"] != base["descriptors"]
    assert m["index"] != base["index"] and m["search"] != base["search"]
    i = paths(Layout(load_config("folder", overrides(corpus) + ";index.nprobe=8")))
    assert i["descriptors"] == base["descriptors"] and i["index"] != base["index"] and i["search"] != base["search"]
    s = paths(Layout(load_config("folder", overrides(corpus) + ";search.top_k=7")))
    assert s["index"] == base["index"] and s["search"] != base["search"]


def test_the_corpus_listing_is_part_of_index_and_search_paths(corpus):
    cfg = load_config("folder", overrides(corpus))
    before = paths(Layout(cfg))
    clip(corpus / "data" / "videos" / "v9.mp4", seed=9, seconds=1.0)
    after = paths(Layout(cfg))
    assert after["features"] == before["features"]
    assert after["index"] != before["index"] and after["search"] != before["search"]


def test_precision_auto_resolves_from_the_settings(corpus):
    from pipeline.store.identities import resolved_precision

    cfg = load_config("folder", overrides(corpus, **{"features.precision": "auto", "features.device": "cpu"}))
    assert resolved_precision(cfg.features) == "float32"
    f32 = load_config("folder", overrides(corpus, **{"features.precision": "float32", "features.device": "cpu"}))
    assert Layout(cfg).features_dir == Layout(f32).features_dir  # the same features, the same path


def test_the_selfsup_networks_training_settings_change_its_file_and_every_feature_path(corpus):
    base = Layout(load_config("folder", overrides(corpus) + ";features.extractor=selfsup"))
    other = Layout(load_config("folder", overrides(corpus) + ";features.extractor=selfsup;frame_model.steps=10"))
    assert base.frame_model_path != other.frame_model_path
    a, b = paths(base), paths(other)
    assert all(a[k] != b[k] for k in a)
    resnet = Layout(load_config("folder", overrides(corpus) + ";frame_model.steps=10"))
    assert paths(resnet) == paths(Layout(load_config("folder", overrides(corpus))))  # unused: no effect

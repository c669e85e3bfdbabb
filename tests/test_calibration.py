"""Copy-decision thresholds calibrated on a corpus's own background (index/calibration.py and its file)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from index.calibration import Background, background_similarity, thresholds_from_background
from index.localise import LocaliserSettings, SampledFrames, localise_sampled
from pipeline.core.hdf5 import ArtifactError
from pipeline.steps.thresholds import calibration_sample
from pipeline.store.fitted.thresholds import CalibratedThresholds, read_thresholds, write_thresholds

D = 64
FPS_COMPARED = 2.0


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def feature_space(rng: np.random.Generator, crowding: float):
    """Frames of a feature space where unrelated frames have cosine ~crowding^2 / (1 + crowding^2): every
    frame shares a common direction (a briefly trained network puts everything close together)."""
    common = unit(rng.standard_normal(D))

    def frames(n: int) -> np.ndarray:
        return unit(rng.standard_normal((n, D)) / np.sqrt(D) + crowding * common)

    def attacked(x: np.ndarray) -> np.ndarray:  # a copy: the same frames, moved by an edit
        return unit(x + 0.6 * (rng.standard_normal(x.shape) / np.sqrt(D)) + crowding * common * 0.1)

    return frames, attacked


def corpus(rng: np.random.Generator, crowding: float, n_videos: int = 16, n_copies: int = 3):
    """Videos of 40 compared frames (20 s); the last ``n_copies`` copy 16 frames (8 s) of a source."""
    frames, attacked = feature_space(rng, crowding)
    videos = [frames(40) for _ in range(n_videos)]
    copies = []
    for k in range(n_copies):
        src, dst = k, n_videos - 1 - k
        videos[dst][10:26] = attacked(videos[src][5:21])
        copies.append(frozenset((src, dst)))
    return videos, set(copies)


def decisions(videos: list[np.ndarray], frame_threshold: float, copy_threshold: float) -> set[frozenset]:
    """The pairs the frame-level stage (TN) decides are copies, every video against every other."""
    st = LocaliserSettings(method="tn", step=8, threshold=frame_threshold, band=10, max_gap=4, min_length=2,
                           max_segments=3, tn_top_k=5, tn_max_step=5)
    sampled = [SampledFrames(v, np.arange(len(v)) / FPS_COMPARED, len(v) / FPS_COMPARED) for v in videos]
    out = set()
    for a in range(len(videos)):
        others = [b for b in range(len(videos)) if b != a]
        for seg in localise_sampled(sampled[a], [sampled[b] for b in others], np.zeros(len(others)), st):
            if seg.score >= copy_threshold:
                out.add(frozenset((a, others[seg.candidate])))
    return out


@pytest.mark.parametrize("crowding", [0.0, 1.2])
def test_calibrated_thresholds_decide_the_copies_in_a_spread_and_in_a_crowded_feature_space(crowding):
    videos, copies = corpus(np.random.default_rng(1), crowding)
    bg = background_similarity(videos, rows_per_video=16, seed=0)
    t = thresholds_from_background(bg, frame_units=0.5, copy_units=4.75)
    assert decisions(videos, t.frame_threshold, t.copy_threshold) == copies
    # the fixed thresholds of one feature space do not transfer to the crowded one: every pair matches
    if crowding:
        fixed = decisions(videos, 0.2, 0.75)
        assert copies < fixed and len(fixed) > 3 * len(copies)


def test_the_background_follows_the_similarity_scale_and_ignores_the_copies():
    rng = np.random.default_rng(2)
    spread_out, _ = corpus(rng, 0.0, n_copies=0)
    crowded, _ = corpus(rng, 1.2, n_copies=0)
    a, b = (background_similarity(v, 16) for v in (spread_out, crowded))
    assert b.median > a.median + 0.3 and b.videos == a.videos == 16 and a.pairs == 16 * 15 * 16
    with_copies, _ = corpus(np.random.default_rng(2), 0.0, n_copies=4)  # a quarter of the videos copy another
    c = background_similarity(with_copies, 16)
    assert abs(c.median - a.median) < 0.02 and abs(c.spread - a.spread) < 0.2 * a.spread


def test_the_background_needs_two_videos_and_compares_every_frame_of_the_others():
    with pytest.raises(ValueError, match="at least 2 videos"):
        background_similarity([unit(np.ones((5, D)))], 4)
    rng = np.random.default_rng(3)
    x = unit(rng.standard_normal((30, D)))
    twin = x[::-1].copy()  # the same frames in another order: each sampled frame finds its twin
    bg = background_similarity([x, twin, unit(rng.standard_normal((30, D)))], rows_per_video=5)
    assert bg.rows == 15 and bg.pairs == 30 and bg.median + bg.spread == pytest.approx(1.0, abs=1e-5)


def test_the_sample_is_the_same_for_the_same_corpus():
    ids = [f"v{i:03d}" for i in range(100)]
    a = calibration_sample(ids, 10, seed=0)
    assert a == calibration_sample(list(reversed(ids)), 10, seed=0) and len(set(a)) == 10 and a == sorted(a)
    assert calibration_sample(ids[:5], 10, seed=0) == ids[:5]


def test_thresholds_file_round_trip_and_damage(tmp_path):
    t = CalibratedThresholds(thresholds_from_background(Background(0.3, 0.4, 11, 300, 3000), 0.5, 4.75),
                             Background(0.3, 0.4, 11, 300, 3000), 0.5, 4.75, "feat", "corpus", ["a", "b"])
    path = write_thresholds(tmp_path / "thresholds-x.json", t)
    got = read_thresholds(path)
    assert got == t
    assert got.thresholds.frame_threshold == pytest.approx(0.5) and got.thresholds.copy_threshold == pytest.approx(1.9)
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "schema": "other"}))
    with pytest.raises(ArtifactError, match=r"thresholds-x\.json: unreadable calibrated thresholds"):
        read_thresholds(path)
    path.write_text(json.dumps({**doc, "copy_threshold": float("nan")}))
    with pytest.raises(ArtifactError, match="not finite"):
        read_thresholds(path)
    path.write_text(path.read_text()[:20])
    with pytest.raises(ArtifactError, match=r"thresholds-x\.json"):
        read_thresholds(path)


def test_verify_names_a_damaged_thresholds_file(tmp_path):
    from pipeline.steps.operations.verify import verify_path

    bg = Background(0.3, 0.4, 11, 300, 3000)
    t = CalibratedThresholds(thresholds_from_background(bg, 0.5, 4.75), bg, 0.5, 4.75, "f", "c", [])
    good = write_thresholds(tmp_path / "thresholds-a.json", t)
    assert verify_path(tmp_path) == ([], 1)
    good.write_text("{")
    problems, checked = verify_path(tmp_path)
    assert checked == 1 and len(problems) == 1 and "thresholds-a.json: unreadable calibrated thresholds" in problems[0]


def test_the_verification_votes_above_the_corpus_background_median():
    """Under ``calibration.mode: background`` the verification's frame threshold follows the corpus's
    background (``calibration.verify_units`` spreads above its median) instead of the fixed
    ``search.verify_threshold``, like the copy thresholds; ``mode: none`` keeps the written one."""
    from index.calibration import Thresholds
    from pipeline.config.load import load_config
    from pipeline.steps.thresholds import applied

    t = CalibratedThresholds(Thresholds(0.2, 1.0), Background(0.35, 0.1, 10, 100, 900), 0.5, 4.75, "f", "c", [])
    cfg = load_config("demo")
    assert cfg.search.verify_threshold == 0.2 and cfg.calibration.verify_units == 0.0
    assert applied(cfg, t).search.verify_threshold == pytest.approx(0.35)  # a crowded space: 0.2 would let all vote
    assert applied(load_config("demo", "calibration.verify_units=2"), t).search.verify_threshold == pytest.approx(0.55)
    assert applied(cfg, None).search.verify_threshold == 0.2

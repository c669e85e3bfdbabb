"""The offline frame extractors (pdqf, mvlad) on generated frames: shapes, determinism, and that
cropped, colour-shifted, overlaid and picture-in-picture copies of a frame are closer to it than
unrelated frames are."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.frame.mvlad import MultiVLADExtractor, MVLADSettings, dense_sift, fit_vocabulary, kmeans
from extractors.frame.pca import train_pca
from extractors.frame.pdqf import PDQFExtractor, dct_matrix, pdqf_raw
from pipeline.datasets.synthetic import scene_frame

H, W = 150, 200


def frames(seeds, t=0.3) -> np.ndarray:
    return np.stack([scene_frame(t, W, H, s) for s in seeds])


def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)[0] \
        .permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def attacked(f: np.ndarray, kind: str, other: np.ndarray) -> np.ndarray:
    if kind == "crop":
        return resize(f[15:-15, 20:-20], H, W)
    if kind == "colour":
        return np.clip(f.astype(np.float32) * [1.2, 0.9, 0.8] + 20, 0, 255).astype(np.uint8)
    if kind == "overlay":
        out = f.copy()
        out[100:130, 10:190] = 255  # a caption bar
        out[10:40, 150:190] = [200, 30, 30]  # a logo
        return out
    if kind == "pip":
        out = other.copy()
        out[30:120, 40:160] = resize(f, 90, 120)
        return out
    raise ValueError(kind)


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return np.concatenate([frames(range(s, s + 8), t) for s, t in ((0, 0.3), (8, 3.1), (16, 5.7), (24, 8.2))])


@pytest.fixture(scope="module")
def mvlad(corpus) -> MultiVLADExtractor:
    settings = MVLADSettings()
    d, w = dense_sift(corpus, settings.cell, settings.stride, settings.contrast)
    vocab = fit_vocabulary(d.reshape(-1, 128)[w.reshape(-1) > 0.5].numpy(), settings)
    raw = MultiVLADExtractor(vocab)
    return MultiVLADExtractor(vocab, train_pca(raw.pca_samples(corpus), {}, n_components=16, shrinkage=1.0))


@pytest.fixture(scope="module")
def pdqf(corpus) -> PDQFExtractor:
    return PDQFExtractor(train_pca(PDQFExtractor().pca_samples(corpus), {}, shrinkage=1.0))


def test_pdqf_is_the_pdq_dct_band():
    d = dct_matrix()
    assert d.shape == (16, 64)
    np.testing.assert_allclose(d @ d.T, np.eye(16), atol=1e-5)  # orthonormal rows
    flat = np.full((2, H, W, 3), 128, np.uint8)
    coef = pdqf_raw(flat)
    assert coef.shape == (2, 256) and abs(coef[0, 0] - 128 * 64) < 1e-2 and np.abs(coef[:, 1:]).max() < 1e-3


@pytest.mark.slow
def test_shapes_norms_and_determinism(mvlad, pdqf):
    f = frames([100, 101, 102])
    for ex, dim in ((mvlad, 16), (pdqf, 255)):
        a, b = ex.describe(f), ex.describe(f.copy())
        assert a.shape == (3, dim) and a.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(a, b)
    assert mvlad.pca_samples(f).shape == (3, mvlad.vocab.dim)


def test_vocabulary_fitting_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    np.testing.assert_array_equal(kmeans(x, 4, 10, seed=3), kmeans(x, 4, 10, seed=3))
    s = MVLADSettings(p=8, k=4, vocabularies=2, kmeans_iters=5)
    a = fit_vocabulary(np.abs(rng.standard_normal((400, 128))).astype(np.float32), s)
    assert a.centroids.shape == (2, 4, 8) and a.proj.shape == (8, 128)
    with pytest.raises(ValueError, match="too few"):
        fit_vocabulary(np.zeros((3, 128), np.float32), s)


# PDQF is a whole-frame DCT: a picture-in-picture copy (a quarter of the frame) is out of its
# reach by design, which is why MultiVLAD is the recommended offline extractor.
@pytest.mark.parametrize(("name", "kind"), [("mvlad", k) for k in ("crop", "colour", "overlay", "pip")]
                         + [("pdqf", k) for k in ("crop", "colour", "overlay")])
def test_a_copy_is_closer_than_unrelated_frames(request, name, kind):
    ex = request.getfixturevalue(name)
    src = frames(range(200, 206), 1.7)
    others = frames(range(300, 306), 4.4)
    copies = np.stack([attacked(f, kind, o) for f, o in zip(src, others[::-1], strict=True)])
    a, c, u = ex.describe(src), ex.describe(copies), ex.describe(others)
    same = (a * c).sum(1)
    unrelated = a @ u.T
    # on average a copy is closer by a margin; but for picture-in-picture (the hardest case: the
    # copy is a quarter of the frame), every copy beats the median unrelated frame
    assert same.mean() > unrelated.mean() + 0.05, (same, unrelated.mean())
    if kind != "pip":
        assert (same > np.median(unrelated)).all(), (same, np.median(unrelated))


def test_black_bars_are_cropped_and_nothing_else():
    from extractors.frame.black_bars import bar_extent, crop_black_bars

    f = frames(range(400, 406))
    boxed = np.zeros((6, H + 40, W + 60, 3), np.uint8)
    boxed[:, 20:20 + H, 30:30 + W] = f
    assert bar_extent(boxed) == (20, 20, 30, 30)
    np.testing.assert_array_equal(crop_black_bars(boxed), f)
    assert crop_black_bars(f) is f  # no bars: untouched
    dark_scene = (f // 4).astype(np.uint8)  # a dark but textured picture is not a bar
    assert crop_black_bars(dark_scene).shape == f.shape


def test_a_letterboxed_copy_matches_better_with_bars_removed(mvlad):
    from extractors.frame.black_bars import crop_black_bars

    src = frames(range(500, 506), 2.2)
    boxed = np.zeros_like(src)
    boxed[:, 25:125] = np.stack([resize(x, 100, W) for x in src])
    a = mvlad.describe(src)
    kept = (a * mvlad.describe(boxed)).sum(1).mean()
    removed = (a * mvlad.describe(crop_black_bars(boxed))).sum(1).mean()
    assert removed > kept


def test_featureless_frames_are_zero_vectors_and_verify_accepts_them(pdqf, tmp_path):
    """A uniform picture (black, a grey card) has no PDQF direction: a zero vector, which matches nothing,
    not rounding noise normalised to unit length; verify accepts it, and still refuses other norms."""
    from pipeline.steps.operations.verify import verify_path
    from pipeline.store.features import VideoFeatures, write_video_features

    frames = np.stack([np.zeros((48, 64, 3), np.uint8), np.full((48, 64, 3), 128, np.uint8),
                       scene_frame(0.0, 64, 48, 3)])
    for ex in (PDQFExtractor(), pdqf):  # without and with a PCA
        x = ex.describe(frames)
        assert np.all(x[:2] == 0) and abs(np.linalg.norm(x[2]) - 1) < 1e-5
    vf = VideoFeatures("v", PDQFExtractor().describe(frames), np.arange(3) / 15.0, {"video_id": "v"})
    write_video_features(tmp_path / "v.h5", vf, "float32")
    assert verify_path(tmp_path)[0] == []
    vf.features[2] *= 0.5
    write_video_features(tmp_path / "v.h5", vf, "float32")
    problems = verify_path(tmp_path)[0]
    assert len(problems) == 1 and "1 frame descriptor(s) are neither unit-norm nor zero" in problems[0]

"""TCA: shapes and masking, chamfer similarity, training on planted copies, the pipeline model and
its task, and a training killed with SIGKILL that resumes to the same model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from extractors.temporal.tca import TCA, TCAConfig, chamfer, sample_frames
from extractors.training.tca_training import TCATrainSettings, train_tca
from pipeline.config.load import load_config
from pipeline.core.hdf5 import ArtifactError
from pipeline.steps.build import build
from pipeline.steps.describe import configured_model, descriptor_store
from pipeline.steps.training.folds import held_out
from pipeline.store.fitted.tca import load_tca
from pipeline.store.layout import Layout
from tests.conftest import align_dataset, noisy_copy, run_cli, smooth_rows

ROOT = Path(__file__).resolve().parents[1]


def small(dim: int = 32, padding: int = 20) -> TCA:
    torch.manual_seed(0)
    return TCA(TCAConfig(dim=dim, padding_size=padding, fps=1.0, heads=4, feedforward=64, dropout=0.0))


def test_frames_are_sampled_at_one_per_second_and_padded(rng):
    cfg = TCAConfig(dim=8, padding_size=10)
    x = rng.standard_normal((15 * 4 + 3, 8)).astype(np.float32)  # 4.2 s at 15 fps
    frames, n = sample_frames(x, cfg)
    assert frames.shape == (10, 8) and n == 5
    np.testing.assert_array_equal(frames[:5].numpy(), x[::15])
    assert not frames[5:].any()
    long, n_long = sample_frames(np.tile(x, (10, 1)), cfg)  # 42 s: truncated to the first 10 frames
    assert n_long == 10 and long.shape == (10, 8)


def test_padded_frames_change_nothing(rng):
    model = small().eval()
    x = torch.from_numpy(smooth_rows(rng, 12, 32))
    frames = torch.zeros(2, 20, 32)
    frames[:, :12] = x
    frames[1, 12:] = torch.randn(8, 32)  # garbage where the padding is
    valid = (torch.arange(20) < 12)[None].expand(2, 20)
    with torch.no_grad():
        out = model(frames, valid)
    torch.testing.assert_close(out[0], out[1])
    assert not out[:, 12:].any()
    np.testing.assert_allclose(out[0, :12].norm(dim=1).numpy(), 1.0, atol=1e-5)
    c = model.video_vector(out)
    torch.testing.assert_close(c[0], torch.nn.functional.normalize(out[0, :12].mean(0), dim=0))
    # a shorter video described through the pipeline's entry point: the same as the batch forward
    d = model.describe(np.repeat(x.numpy(), 15, axis=0))
    torch.testing.assert_close(d, out[0], atol=1e-5, rtol=1e-5)


def test_chamfer_similarity_matches_a_direct_computation(rng):
    q = torch.zeros(6, 16)
    q[:4] = torch.from_numpy(smooth_rows(rng, 4, 16))
    refs = torch.zeros(3, 7, 16)
    for b, n in enumerate((7, 3, 5)):
        refs[b, :n] = torch.from_numpy(smooth_rows(rng, n, 16))
    score, offset = chamfer(q, refs)
    for b, n in enumerate((7, 3, 5)):
        sims = np.array([[float(q[i] @ refs[b, j]) for j in range(n)] for i in range(4)])
        assert float(score[b]) == pytest.approx(sims.max(axis=1).mean(), abs=1e-6)
        diffs = np.sort(np.arange(4) - sims.argmax(axis=1))
        assert int(offset[b]) == diffs[(len(diffs) - 1) // 2]  # the lower median


def planted(rng, n_sources: int):
    """Scenes with a persistent look; every copy is a noisy excerpt; *every* video also carries a random
    offset in one fixed 8-dim subspace (an attack that hides the content from plain mean pooling)."""
    d = 64
    basis = np.linalg.qr(rng.standard_normal((d, 8)))[0].T

    def attacked(x):
        y = x + 0.6 * (rng.standard_normal(8) @ basis)[None]
        return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)

    vids, groups, pairs = [], [], []
    for s in range(n_sources):
        scene = rng.standard_normal(d)
        src = scene / np.linalg.norm(scene) + 0.7 * smooth_rows(rng, 15 * 40, d, width=30)
        src = (src / np.linalg.norm(src, axis=1, keepdims=True)).astype(np.float32)
        vids += [attacked(src), attacked(noisy_copy(rng, src[150:450], 0.3))]
        groups += [s, s]
        pairs.append((2 * s, 2 * s + 1))
    return vids, np.array(groups), np.array(pairs)


def pair_ap(model: TCA, vids, groups, which) -> float:
    with torch.no_grad():
        c = model.video_vector(torch.stack([model.describe(vids[v]) for v in which]))
    s = (c @ c.T).numpy()
    iu = np.triu_indices(len(which), 1)
    y = (groups[which][:, None] == groups[which][None, :])[iu]
    order = np.argsort(-s[iu])
    hits = y[order]
    return float((np.cumsum(hits) / np.arange(1, len(hits) + 1))[hits].mean())


@pytest.mark.slow
def test_training_separates_held_out_planted_copies_better_than_its_initialisation(rng):
    vids, groups, pairs = planted(rng, 40)
    model = TCA(TCAConfig(dim=64, padding_size=60, heads=4, feedforward=128))
    held = list(range(50, 80))  # sources 25-39: never trained on
    before = pair_ap(model, vids, groups, held)
    st = train_tca(model, vids, groups, pairs[:25],
                   TCATrainSettings(steps=200, batch=16, queue=512, hard_negatives=32, lr=3e-4))
    after = pair_ap(model, vids, groups, held)
    assert st.history[-1] < 0.5 * st.history[0]
    assert before < 0.2 and after > 0.8, (before, after)


@pytest.mark.slow
def test_training_is_deterministic_and_resumes_to_the_same_model(rng):
    vids, groups, pairs = planted(rng, 6)
    settings = TCATrainSettings(steps=6, batch=4, queue=32, hard_negatives=8, seed=3)

    def fresh() -> TCA:
        torch.manual_seed(1)
        return TCA(TCAConfig(dim=64, padding_size=40, heads=4, feedforward=64))

    saved = []
    a = train_tca(fresh(), vids, groups, pairs, settings, on_checkpoint=saved.append, every=2)
    b = train_tca(fresh(), vids, groups, pairs, settings)
    mid = saved[1]  # the state after 4 steps
    assert mid.step == 4 and len(saved) == 3
    c = train_tca(fresh(), vids, groups, pairs, settings, state=mid)
    for other in (b, c):
        assert other.history == pytest.approx(a.history, rel=1e-5)
        for k in a.model:
            torch.testing.assert_close(other.model[k], a.model[k], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- in the pipeline


def overrides(root: Path, **extra: object) -> str:
    base = {"dataset.root": str(root), "dataset.kind": "align", "dataset.gt_file": "gt_align.align",
            "dataset.name": "gen", "dataset.max_length_s": 30, "features.extractor": "pdqf",
            "work_dir": str(root / "work"), "reports_dir": str(root / "reports"),
            "models": "{lamv: {type: tmk, preset: lamv}, tca: {type: tca, padding_size: 16, heads: 4, "
                      "feedforward: 64}}",
            "index.model": "tca", "search.model": "tca", "evaluate.models": "[lamv, tca]",
            "lamv_training.folds": 2, "tca_training.steps": 6, "tca_training.batch": 4,
            "tca_training.queue": 32, "tca_training.hard_negatives": 8, "tca_training.checkpoint_every": 2,
            "tca_training.device": "cpu"}
    base.update({k: v for k, v in extra.items()})
    return ";".join(f"{k}={v}" for k, v in base.items())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Three recordings of each of two synthetic 22-s scenes, ``.align`` ground truth, pdqf features."""
    return align_dataset(tmp_path_factory.mktemp("tcagen"), overrides)


@pytest.mark.slow
def test_tca_through_the_chain_as_index_and_re_ranking_model(dataset):
    layout = Layout(load_config("folder", overrides(dataset)))
    summary = build(layout, until="evaluate", show_progress=False)
    assert any(r == "Train(model=tca)" for r in summary.ran)
    ck = load_tca(layout.trained_path("tca"))
    assert len(ck.history) == 6 and ck.provenance["held_out_items"]
    assert set(ck.provenance["held_out_items"]).isdisjoint(ck.provenance["train_items"])
    assert "1 frames per second" in ck.provenance["rate"]
    # TCA_c feeds the index; TCA_f is what the descriptors hold
    store = descriptor_store(layout, "tca")
    ids, means = store.mean_frames()
    assert store.get(ids[:1]).shape == (1, 16, means.shape[1])
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, atol=1e-5)
    rep = json.loads((layout.report_dir("tca") / "report.json").read_text())
    assert rep["held_out"]["fold"] == 0 and 0 <= rep["metrics"]["pair_AP"] <= 1
    assert held_out(layout) is not None
    # training settings are part of every output made with the model, and only of those
    other = Layout(load_config("folder", overrides(dataset, **{"tca_training.steps": 7})))
    assert other.descriptors_key("tca") != layout.descriptors_key("tca")
    assert other.descriptors_key("lamv") == layout.descriptors_key("lamv")
    # a checkpoint given by path is used as it is, named by its content
    given = Layout(load_config("folder", overrides(dataset, models=(
        "{lamv: {type: tmk, preset: lamv}, tca: {type: tca, padding_size: 16, heads: 4, feedforward: 64, "
        f"checkpoint: {layout.trained_path('tca')}}}}}"))))
    assert not given.trained_models and given.model_identity("tca")["checkpoint"]["sha256"]
    assert isinstance(configured_model(given, "tca"), TCA)


@pytest.mark.slow
def test_a_missing_or_damaged_checkpoint_is_one_clear_error(dataset, tmp_path):
    missing = Layout(load_config("folder", overrides(dataset, models=(
        f"{{lamv: {{type: tmk, preset: lamv}}, tca: {{type: tca, checkpoint: {tmp_path / 'no.pt'}}}}}"))))
    with pytest.raises(ArtifactError, match=r"no\.pt: TCA checkpoint not found.*python -m pipeline train"):
        configured_model(missing, "tca")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match=r"bad\.pt: not a readable TCA file"):
        load_tca(bad)


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_to_the_same_model(dataset, tmp_path):
    copies = {}
    for name in ("straight", "killed"):
        root = tmp_path / name
        shutil.copytree(dataset, root, symlinks=True, ignore=shutil.ignore_patterns("tca-*", "descriptors",
                                                                                    "reports", "index-*", "search"))
        copies[name] = root
    ov = {n: overrides(r) for n, r in copies.items()}
    assert run_cli(["train", "--dataset", "folder", "--overrides", ov["straight"], "--quiet"]).returncode == 0
    killed = run_cli(["train", "--dataset", "folder", "--overrides", ov["killed"], "--quiet"],
                     armed="tca.checkpoint_saved=kill@2")
    assert killed.returncode == -9
    lay = Layout(load_config("folder", ov["killed"]))
    assert lay.training_state_path("tca").is_file() and not lay.trained_path("tca").exists()
    resumed = run_cli(["train", "--dataset", "folder", "--overrides", ov["killed"]])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming the training of tca after step 4" in resumed.stderr
    assert not lay.training_state_path("tca").exists()
    a = load_tca(Layout(load_config("folder", ov["straight"])).trained_path("tca"))
    b = load_tca(lay.trained_path("tca"))
    np.testing.assert_allclose(a.history, b.history, rtol=1e-5)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    for k in sa:  # the same model up to float rounding across processes
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6)

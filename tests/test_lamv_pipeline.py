"""The learned LAMV kernel in the pipeline: a generated alignment dataset, the Train task's artifact, held-out
evaluation, the model type, and a training killed with SIGKILL that resumes to the same kernel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.config.load import load_config
from pipeline.config.schema import ConfigError
from pipeline.datasets.kinds import load_ground_truth
from pipeline.steps.build import build
from pipeline.steps.describe import configured_model
from pipeline.steps.training.folds import held_out
from pipeline.steps.training.lamv import aligned_data, train_kernel
from pipeline.store.fitted.lamv_kernel import load_kernel
from pipeline.store.layout import Layout
from tests.conftest import align_dataset, run_cli

ROOT = Path(__file__).resolve().parents[1]

# every test here reads a generated dataset whose features the module fixture extracts (a chain)
pytestmark = pytest.mark.slow


def overrides(root: Path, **extra: object) -> str:
    base = {"dataset.root": str(root), "dataset.kind": "align", "dataset.gt_file": "gt_align.align",
            "dataset.name": "gen", "dataset.max_length_s": 30, "features.extractor": "pdqf",
            "work_dir": str(root / "work"), "reports_dir": str(root / "reports"),
            "models": "{lamv: {type: tmk, preset: lamv}, ll: {type: lamv_learned}}", "index.model": "lamv",
            "search.model": "lamv", "evaluate.models": "[lamv, ll]", "lamv_training.folds": 2,
            "lamv_training.snippet_s": 8, "lamv_training.epochs": 3, "lamv_training.batch": 4}
    base.update({k: v for k, v in extra.items()})
    return ";".join(f"{k}={v}" for k, v in base.items())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Three recordings of each of two synthetic 22-s scenes, ``.align`` ground truth, pdqf features."""
    return align_dataset(tmp_path_factory.mktemp("lamvgen"), overrides)


def test_generated_alignment_dataset_has_exact_offsets(dataset):
    cfg = load_config("folder", overrides(dataset))
    truth = {r["name"]: r for r in json.loads((dataset / "truth.json").read_text())}
    gt = load_ground_truth(cfg.dataset, [v.id for v in Layout(cfg).videos])
    assert len(gt.align) == 6 and {it.video for it in gt.align} == {f"align/{n}" for n in truth}
    idx, off = gt.align_pairs()
    assert len(idx) >= 2
    for (i, j), o in zip(idx, off, strict=True):
        a, b = truth[gt.align[i].video.split("/")[1]], truth[gt.align[j].video.split("/")[1]]
        assert a["source"] == b["source"]  # recordings of different scenes never overlap
        assert o == pytest.approx(a["start_s"] - b["start_s"], abs=1e-3)
    assert len({r["fps"] for r in truth.values()} | {r["attacks"] for r in truth.values()}) > 2


def test_training_data_and_folds_follow_the_overlap_graph(dataset):
    layout = Layout(load_config("folder", overrides(dataset)))
    data = aligned_data(layout)
    assert len(data.features) == 6 and len(data.pairs) >= 2
    # both videos of a pair are in the same fold; the two scenes are in different folds
    assert (data.fold[data.pairs.a] == data.fold[data.pairs.b]).all()
    assert set(data.fold.tolist()) == {0, 1}
    held = held_out(layout)
    assert held is not None and len(held.items) == 3
    assert {data.names[i].split("[")[0] for i in np.flatnonzero(data.fold == 0)} == set(held.videos)


def test_learned_kernel_through_the_chain(dataset):
    layout = Layout(load_config("folder", overrides(dataset)))
    summary = build(layout, until="evaluate", show_progress=False)
    assert any(r == "Train(model=ll)" for r in summary.ran)
    kernel = load_kernel(layout.trained_path("ll"))
    assert kernel.coefficients.shape == (4, 32) and (kernel.coefficients >= 0).all()  # 32 harmonics: the default
    assert len(kernel.history) == 3 and kernel.provenance["held_out_items"]
    assert set(kernel.provenance["held_out_items"]).isdisjoint(kernel.provenance["train_items"])
    reports = {m: json.loads((layout.report_dir(m) / "report.json").read_text()) for m in ("lamv", "ll")}
    for rep in reports.values():  # both models scored on the held-out fold only
        assert rep["held_out"]["fold"] == 0 and rep["held_out"]["videos"] == 3
        assert len(rep["per_query"]) == 3
        assert 0 <= rep["metrics"]["localisation_accuracy_below_1s"] <= 1
    ll = reports["ll"]["learned_kernel"]
    assert ll["kernel_id"] == kernel.kernel_id and len(ll["history"]) == 3
    assert {"lamv_kernel.png", "lamv_training.png"} <= set(reports["ll"]["plots"])
    assert "Learned LAMV kernel" in (layout.report_dir("ll") / "report.md").read_text()
    # the kernel's training settings are part of every output made with it, and only of those
    other = Layout(load_config("folder", overrides(dataset, **{"lamv_training.epochs": 4})))
    assert other.descriptors_key("ll") != layout.descriptors_key("ll")
    assert other.descriptors_key("lamv") == layout.descriptors_key("lamv")
    # a kernel file given by path is used as it is, named by its content
    kernel_file = layout.trained_path("ll")
    given = Layout(load_config("folder", overrides(dataset, models="{lamv: {type: tmk, preset: lamv}, "
                                                   f"ll: {{type: lamv_learned, kernel: {kernel_file}}}}}")))
    assert not given.trained_models and held_out(given) is None
    np.testing.assert_array_equal(configured_model(given, "ll").coefficients().numpy(), kernel.coefficients)
    assert given.model_identity("ll")["kernel"]["sha256"]


def test_training_killed_with_sigkill_resumes_to_the_same_kernel(dataset, tmp_path):
    copies = {}
    for name in ("straight", "killed"):
        root = tmp_path / name
        shutil.copytree(dataset, root, symlinks=True, ignore=shutil.ignore_patterns("lamv-*", "descriptors",
                                                                                    "reports", "index-*", "search"))
        copies[name] = root
    ov = {n: overrides(r, **{"lamv_training.epochs": 4}) for n, r in copies.items()}
    assert run_cli(["train", "--dataset", "folder", "--overrides", ov["straight"], "--quiet"]).returncode == 0
    killed = run_cli(["train", "--dataset", "folder", "--overrides", ov["killed"], "--quiet"],
                     armed="lamv.epoch_saved=kill@2")
    assert killed.returncode == -9
    lay = Layout(load_config("folder", ov["killed"]))
    assert lay.training_state_path("ll").is_file() and not lay.trained_path("ll").exists()
    resumed = run_cli(["train", "--dataset", "folder", "--overrides", ov["killed"]])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming the training of ll after epoch 2" in resumed.stderr
    assert not lay.training_state_path("ll").exists()
    a = load_kernel(Layout(load_config("folder", ov["straight"])).trained_path("ll"))
    b = load_kernel(lay.trained_path("ll"))
    # same kernel up to float rounding: two processes' BLAS reductions may differ in the last bit
    np.testing.assert_allclose(a.coefficients, b.coefficients, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose([h.loss for h in a.history], [h.loss for h in b.history], rtol=1e-5)
    assert not np.allclose(a.coefficients, a.init_coefficients)  # it did train


def test_a_dataset_without_alignment_truth_cannot_train(dataset, tmp_path):
    p = run_cli(["train", "--dataset", "folder", "--overrides",
                 overrides(dataset, **{"dataset.kind": "folder", "work_dir": str(tmp_path)})])
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("train: dataset gen (kind folder) has no alignment")


def test_training_settings_are_validated(dataset):
    with pytest.raises(ConfigError, match="test_fold < folds"):
        load_config("folder", overrides(dataset, **{"lamv_training.test_fold": 2}))
    with pytest.raises(ConfigError, match=r"models\.ll\.init"):
        load_config("folder", overrides(dataset, models="{ll: {type: lamv_learned, init: gaussian}}",
                                        **{"index.model": "ll", "search.model": "ll", "evaluate.models": "[ll]"}))


def test_a_missing_kernel_file_is_one_clear_error(dataset, tmp_path):
    lay = Layout(load_config("folder", overrides(dataset, models=f"{{ll: {{type: lamv_learned, kernel: "
                                                 f"{tmp_path / 'none.h5'}}}}}", **{"index.model": "ll",
                                                 "search.model": "ll", "evaluate.models": "[ll]"})))
    with pytest.raises(Exception, match="learned LAMV kernel not found"):
        configured_model(lay, "ll")


def test_period_design_ranks_candidate_sets(dataset):
    from pipeline.steps.training.lamv import coprime_period_sets, design_periods

    sets = coprime_period_sets(3, 3.0, 200.0, 4, seed=1)
    assert len(sets) == 4 and all(len(s) == 3 for s in sets)
    from math import gcd

    assert all(gcd(a, b) == 1 for s in sets for i, a in enumerate(s) for b in s[i + 1:])
    scores = design_periods(Layout(load_config("folder", overrides(dataset))), sets, m=8)
    assert [s.localisation_1s for s in scores] == sorted((s.localisation_1s for s in scores), reverse=True)
    assert {tuple(s.periods) for s in scores} == {tuple(s) for s in sets}


def test_kernel_training_uses_only_training_folds(dataset, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(dataset, root, symlinks=True, ignore=shutil.ignore_patterns("lamv-*"))
    layout = Layout(load_config("folder", overrides(root, **{"lamv_training.test_fold": 1})))
    k = train_kernel(layout, "ll", show_progress=False)
    data = aligned_data(layout)
    train, held = data.split(1)
    assert k.provenance["train_pairs"] == int(train.sum()) and k.provenance["held_out_pairs"] == int(held.sum())
    assert set(k.provenance["held_out_items"]) == {data.names[i] for i in np.flatnonzero(data.fold == 1)}

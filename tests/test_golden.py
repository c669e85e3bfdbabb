"""Numerical parity with the original implementation (``../shared/golden``).

Discovers every ``*.npz`` in ``$GOLDEN_DIR`` (default ``../shared/golden`` beside
the project) and dispatches on the file-name prefix, so any further file of
the same schema is checked too.  Skips cleanly when the directory is absent.

Tolerances (golden README): descriptors ``max|d| <= 5e-5 max|ref|``, score
curves ``<= 2e-5 max|ref|``, arg-max offsets exact, metrics to 1e-9.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from extractors.decode.timestamps import FPS, sampling_timestamps
from extractors.temporal.cte import CTE
from extractors.temporal.tmk import TMK, von_mises_coefficients
from index.query_expansion import expand_query
from pipeline.datasets.readers import (
    align_ground_truth,
    parse_align,
    parse_evve_dat,
    parse_vcdb_annotation,
    vcdb_segments,
)
from pipeline.metrics.copies import (
    max_f1,
    pr_auc,
    precision_recall_curve,
    segment_pr,
    vcdb_decisions,
    vcdb_judge,
    vcdb_query_pairs,
)
from pipeline.metrics.events import evve_map
from pipeline.metrics.localisation import accuracy_below, localization_errors, map_localization

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(os.environ.get("GOLDEN_DIR", ROOT.parent / "shared" / "golden"))
FILES = sorted(GOLDEN_DIR.glob("*.npz")) if GOLDEN_DIR.is_dir() else []

DESC_TOL = 5e-5
CURVE_TOL = 2e-5
METRIC_TOL = 1e-9

# Model prefixes of the evaluator files -> our presets.
EVAL_MODELS = {"tmkff": "lamv", "poullot": "poullot"}


def rel_close(ours, ref, tol: float, what: str) -> None:
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    ref = np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    scale = max(float(np.abs(ref).max()), 1e-30)
    err = float(np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max()) / scale
    assert err <= tol, f"{what}: relative error {err:.2e} > {tol:.0e}"


def tmk_from(z, prefix: str) -> TMK:
    return TMK(z[f"{prefix}__periods"], int(z[f"{prefix}__m"]), float(z[f"{prefix}__beta"]),
               str(z[f"{prefix}__norm"]))


def check_tmk_pair(z, prefix: str, offsets: np.ndarray, xa, ta, xb, tb, a="a", b="b") -> None:
    model = tmk_from(z, prefix)
    rel_close(model.a, z[f"{prefix}__a"], 1e-6, f"{prefix} coefficients")
    fa, fb = model.descriptor(xa, ta), model.descriptor(xb, tb)
    rel_close(fa, z[f"{prefix}__fv_{a}"], DESC_TOL, f"{prefix} descriptor {a}")
    rel_close(fb, z[f"{prefix}__fv_{b}"], DESC_TOL, f"{prefix} descriptor {b}")
    curves = model.score(fa, fb, offsets)
    rel_close(curves, z[f"{prefix}__scores"], CURVE_TOL, f"{prefix} score curve")
    # Curves from the reference's own descriptors isolate the scoring step.
    curves_ref_fv = model.score(torch.from_numpy(z[f"{prefix}__fv_{a}"]),
                                torch.from_numpy(z[f"{prefix}__fv_{b}"]), offsets)
    rel_close(curves_ref_fv, z[f"{prefix}__scores"], CURVE_TOL, f"{prefix} scoring")
    best, best_off = model.score_max(fa, fb, offsets, chunk_elements=4096)
    off = np.asarray(offsets).reshape(-1)
    np.testing.assert_array_equal(curves.argmax(1).numpy(), z[f"{prefix}__argmax_index"])
    np.testing.assert_array_equal(best_off.numpy(), z[f"{prefix}__argmax_offset"])
    np.testing.assert_array_equal(off[z[f"{prefix}__argmax_index"]], z[f"{prefix}__argmax_offset"])
    rel_close(best, z[f"{prefix}__max_score"], CURVE_TOL, f"{prefix} max score")


def check_cte_definition(z, prefix: str, x: np.ndarray, ref: np.ndarray) -> None:
    """The reference's DFT bins: per-video length next_pow2(N), frame-index time."""
    n = x.shape[-2]
    model = CTE(1 << int(np.ceil(np.log2(n))), int(z[f"{prefix}__m"]), float(z[f"{prefix}__lambda"]))
    rel_close(model.descriptor(x, check_span=False), ref, DESC_TOL, f"{prefix} DFT bins")


def check_cte_finds_offset(offsets, xa, ta, xb, tb, true_offset: float, what: str) -> None:
    """Our corrected CTE (common grid, no wrap-around, real timestamps) finds the
    planted offset exactly, where the reference does not."""
    model = CTE.for_max_length(int(np.abs(offsets).max()) + 1, m=256)
    _, off = model.score_max(model.descriptor(xa, ta), model.descriptor(xb, tb), offsets)
    assert float(off[0]) == np.round(true_offset), (
        f"{what}: corrected CTE found {float(off[0])}, planted {true_offset:.2f}")


# --------------------------------------------------------------------------- checkers


def assert_offsets_or_near_tie(model: TMK, queries, db, ours: np.ndarray, ref: np.ndarray,
                               scale: float) -> None:
    """Arg-max offsets must agree exactly, except at float32 near-ties: where the
    reference's offset scores within ``CURVE_TOL * scale`` of our maximum on our
    own curve (the reference forms phases and sums in float32; on EVVE's
    +-16000-frame range the Poullot periods produce such ties).  At most 2 %."""
    bad = np.argwhere(ours != ref)
    assert len(bad) <= max(1, 0.02 * ours.size), f"{len(bad)} arg-max offsets differ"
    for qi, di in bad:
        at = model.score(queries[qi], db[di:di + 1], [ours[qi, di], ref[qi, di]])[0]
        gap = float(at[0] - at[1])
        assert 0 <= gap <= CURVE_TOL * scale, (
            f"query {qi} item {di}: offset {ours[qi, di]} vs reference {ref[qi, di]}, gap {gap:.2e}")


def check_vonmises(z) -> None:
    beta, clamp = float(z["beta"]), float(z["clamp_min"])
    keys = [k for k in z.files if re.fullmatch(r"a_m\d+", k)]
    assert keys
    for k in keys:
        m = int(k[3:])
        ours = von_mises_coefficients(beta, m, clamp).astype(np.float32)
        np.testing.assert_allclose(ours, z[k], rtol=1e-6, atol=0, err_msg=k)


def model_prefixes(z, suffix: str) -> list[str]:
    return sorted({k[: -len(suffix)] for k in z.files if k.endswith(suffix)})


def check_tmk_pair_file(z) -> None:
    offsets = z["offsets"]
    prefixes = model_prefixes(z, "__fv_a")
    assert prefixes
    for p in prefixes:
        if f"{p}__periods" in z.files:
            check_tmk_pair(z, p, offsets, z["x_a"], z["t_a"], z["x_b"], z["t_b"])
        else:
            check_cte_definition(z, p, z["x_a"], z[f"{p}__fv_a"])
            check_cte_definition(z, p, z["x_b"], z[f"{p}__fv_b"])
    true = float(z["true_offset"])
    if np.isfinite(true) and any(f"{p}__lambda" in z.files for p in prefixes):
        check_cte_finds_offset(offsets, z["x_a"], z["t_a"], z["x_b"], z["t_b"], true, "pair")


def check_batch_padded(z) -> None:
    offsets, lengths = z["offsets"], z["db_lengths"]
    for p in model_prefixes(z, "__fv_q"):
        if f"{p}__periods" in z.files:
            model = tmk_from(z, p)
            fq = model.descriptor(z["x_q"], z["t_q"])
            fdb = model.descriptor(z["x_db"], z["t_db"])
            rel_close(fq, z[f"{p}__fv_q"], DESC_TOL, f"{p} query")
            rel_close(fdb, z[f"{p}__fv_db"], DESC_TOL, f"{p} padded batch")
            alone = torch.cat([model.descriptor(z["x_db"][i:i + 1, :n], z["t_db"][i:i + 1, :n])
                               for i, n in enumerate(lengths)])
            rel_close(alone, z[f"{p}__fv_db_unpadded"], DESC_TOL, f"{p} unpadded")
            rel_close(alone, fdb, 1e-6, f"{p} zero-padding invariance")
            curves = model.score(fq, fdb, offsets)
            rel_close(curves, z[f"{p}__scores"], CURVE_TOL, f"{p} batch curves")
            best, off = model.score_max(fq, fdb, offsets, chunk_elements=5000)
            np.testing.assert_array_equal(curves.argmax(1).numpy(), z[f"{p}__argmax_index"])
            np.testing.assert_array_equal(off.numpy(), z[f"{p}__argmax_offset"])
            rel_close(best, z[f"{p}__max_score"], CURVE_TOL, f"{p} batch max")
        else:
            check_cte_definition(z, p, z["x_q"], z[f"{p}__fv_q"])
            check_cte_definition(z, p, z["x_db"], z[f"{p}__fv_db"])
            for i, n in enumerate(lengths):
                check_cte_definition(z, p, z["x_db"][i:i + 1, :n], z[f"{p}__fv_db_unpadded_{i}"])
            for i, true in enumerate(z["true_offset"]):
                if np.isfinite(true):
                    n = int(lengths[i])
                    check_cte_finds_offset(offsets, z["x_q"], z["t_q"], z["x_db"][i:i + 1, :n],
                                           z["t_db"][i:i + 1, :n], float(true), f"batch item {i}")


def check_norm_variants(z) -> None:
    names = [str(n) for n in z["variant_names"]]
    assert len(names) >= 1
    for p in names:
        check_tmk_pair(z, p, z["offsets"], z["x_a"], z["t_a"], z["x_b"], z["t_b"])
    true = float(z["true_offset"])
    if np.isfinite(true):
        check_cte_finds_offset(z["offsets"], z["x_a"], z["t_a"], z["x_b"], z["t_b"], true, "variants")


def check_shift_fv(z) -> None:
    shifts = z["shifts"]
    for p in model_prefixes(z, "__fv_shifted"):
        model = tmk_from(z, p)
        fv = model.descriptor(z["x"], z["t"])
        rel_close(fv, z[f"{p}__fv"], DESC_TOL, f"{p} descriptor")
        shifted = model.shift(fv.expand(len(shifts), -1, -1, -1), shifts)
        rel_close(shifted, z[f"{p}__fv_shifted"], DESC_TOL, f"{p} shifted")
        direct = torch.cat([model.descriptor(z["x"], z["t"] + np.float32(s)) for s in shifts])
        rel_close(direct, z[f"{p}__fv_of_shifted_timestamps"], DESC_TOL, f"{p} shifted timestamps")
        rel_close(shifted, direct, DESC_TOL, f"{p} shift == descriptor of shifted timestamps")


def check_frontend_rules(z) -> None:
    for fps, ts in zip(z["ts_container_fps"], z["ts_timestamps"], strict=True):
        np.testing.assert_array_equal(sampling_timestamps(int(z["ts_n_frames"]), fps), ts)
    try:
        from extractors.frame import rmac  # noqa: F401  (frame-feature front end, issue 3)
    except ImportError:
        pytest.skip("timestamps checked; RMAC/resize/PCA rules need extractors.frame.rmac")
    from tests.golden_frontend import check_frontend_features

    check_frontend_features(z)


def parse_model_string(s: str) -> TMK:
    norm = re.search(r"norm=(\w+)", s).group(1)
    periods = [float(v) for v in re.search(r"periods=\[([^\]]*)\]", s).group(1).split(",")]
    m = int(re.search(r"\bm=(\d+)", s).group(1))
    return TMK(periods, m, 32.0, norm)


def check_localization(z) -> None:
    items = parse_align("align", str(z["align_kind"]), text=str(z["align_text"]))
    names = [it.video for it in items]
    assert names == [str(n) for n in z["video_names"]]
    np.testing.assert_array_equal([it.begin_s for it in items], z["video_begin"])
    np.testing.assert_array_equal([it.end_s for it in items], z["video_end"])
    np.testing.assert_array_equal([it.global_s for it in items], z["video_global"])
    gt_idx, gt_off = align_ground_truth(items)
    np.testing.assert_array_equal(gt_idx, z["gt_pair_index"])
    np.testing.assert_allclose(gt_off, z["gt_pair_offset_s"], rtol=0, atol=METRIC_TOL)
    n = len(items)

    def summary(prefix: str, pair_index, pair_max, pair_off_frames) -> None:
        errors = localization_errors(n, pair_index, pair_max,
                                             np.asarray(pair_off_frames) / FPS, gt_idx, gt_off)
        np.testing.assert_allclose(errors, z[f"{prefix}__errors_s"], rtol=0, atol=METRIC_TOL)
        acc = accuracy_below(errors)
        for t, key in ((0.1, "0p1"), (1.0, "1"), (10.0, "10")):
            assert abs(acc[t] - float(z[f"{prefix}__acc_lt_{key}"])) <= METRIC_TOL
        m, _ = map_localization(n, pair_index, pair_max, gt_idx)
        assert abs(m - float(z[f"{prefix}__map_localization"])) <= METRIC_TOL

    summary("given", z["given__pair_index"], z["given__pair_max"],
            z["given__pair_argmax_offset"])

    model = parse_model_string(str(z["e2e__model"]))
    descs = []
    for it, fps in zip(items, z["video_container_fps"], strict=True):
        feat = z[f"feat__{it.video}"]
        lo, hi = int(np.floor(FPS * it.begin_s)), int(np.floor(FPS * it.end_s))
        crop = feat[lo:hi] if lo < hi else feat
        t = sampling_timestamps(len(crop), float(fps))
        np.testing.assert_array_equal(t, z[f"crop_t__{it.video}"])
        descs.append(model.descriptor(crop[None], t[None]))
    pair_index = z["pair_index"]
    # files with long items may omit `offsets` and `pair_curves` (golden README):
    # the offsets are then arange(-length, length) and only the maxima are compared
    if "offsets" in z.files:
        offsets = z["offsets"]
    else:
        length = int(z["length"])
        offsets = np.arange(-length, length, dtype=np.int64)[None]
    fa = torch.cat([descs[i] for i in pair_index[:, 0]])
    fb = torch.cat([descs[j] for j in pair_index[:, 1]])
    curves = model.score_pairs(fa, fb, offsets)
    if "pair_curves" in z.files:
        rel_close(curves, z["pair_curves"], CURVE_TOL, "localisation pair curves")
    off = offsets.reshape(-1)[curves.argmax(1).numpy()]
    np.testing.assert_array_equal(off, z["pair_argmax_offset"])
    rel_close(curves.max(1).values, z["pair_max"], CURVE_TOL, "pair max")
    summary("e2e", pair_index, curves.max(1).values.numpy(), off)


def check_vcdb(z) -> None:
    pairs = []
    for fname, text in zip(z["annotation_files"], z["annotation_texts"], strict=True):
        pairs += parse_vcdb_annotation(str(fname), text=str(text))
    segments, gt = vcdb_segments(pairs)
    assert [s.video for s in segments] == [str(v) for v in z["segments_video"]]
    np.testing.assert_array_equal([s.begin_s for s in segments], z["segments_begin_s"])
    np.testing.assert_array_equal([s.end_s for s in segments], z["segments_end_s"])
    assert Counter(map(tuple, gt.tolist())) == Counter(map(tuple, z["gt_pairs_segment_index"].tolist()))
    annotated = sorted({s.video for s in segments})
    keys = [str(k) for k in z["video_keys"]]
    videos = [k for k in keys if k in annotated]  # never-annotated videos are never searched
    rq, rv = vcdb_query_pairs(segments, videos)
    rv_keys = np.array([keys.index(videos[j]) for j in rv])

    def check_model(prefix: str, max_score, pred_start_s) -> None:
        np.testing.assert_array_equal(rq, z[f"{prefix}__rec_query_segment"])
        np.testing.assert_array_equal(rv_keys, z[f"{prefix}__rec_video_index"])
        ok, qside = vcdb_judge(segments, gt, videos, rq, rv, pred_start_s)
        np.testing.assert_array_equal(ok, z[f"{prefix}__rec_localized_ok"].astype(bool))
        np.testing.assert_array_equal(qside, z[f"{prefix}__rec_query_side_overlap"].astype(bool))
        for mode, tag in (("reference", "emitted"), ("corrected", "intended")):
            p, lab = vcdb_decisions(max_score, ok, qside, mode)
            rel_close(p, z[f"{prefix}__rec_{tag}_probas"], CURVE_TOL, f"{prefix} {tag} probas")
            np.testing.assert_array_equal(lab, z[f"{prefix}__rec_{tag}_labels"])
        ref = segment_pr(max_score, ok, qside, mode="reference")
        # The emitted list is a multiset of (proba, label): compare per label.
        for label in (0, 1):
            np.testing.assert_allclose(np.sort(ref.probas[ref.labels == label]),
                                       np.sort(z[f"{prefix}__probas"][z[f"{prefix}__labels"] == label]),
                                       rtol=0, atol=CURVE_TOL * max(1.0, float(ref.probas.max())))
        # Metrics from the golden lists themselves (exact), then from ours.
        pr, rc, _ = precision_recall_curve(z[f"{prefix}__labels"], z[f"{prefix}__probas"])
        assert abs(max_f1(pr, rc) - float(z[f"{prefix}__max_f1"])) <= METRIC_TOL
        assert abs(pr_auc(pr, rc) - float(z[f"{prefix}__auc"])) <= METRIC_TOL
        assert abs(ref.max_f1 - float(z[f"{prefix}__max_f1"])) <= 1e-6
        assert abs(ref.auc - float(z[f"{prefix}__auc"])) <= 1e-6
        fixed = segment_pr(max_score, ok, qside, mode="corrected")
        assert abs(fixed.max_f1 - float(z[f"{prefix}__intended_max_f1"])) <= 1e-6

    # Given scores: inputs are the per-record best score and offset.
    np.testing.assert_array_equal(z["given__query_segment"], z["given__rec_query_segment"])
    given_start = -z["given__argmax_offset"] / FPS
    np.testing.assert_allclose(given_start, z["given__pred_start_s"], rtol=0, atol=METRIC_TOL)
    check_model("given", z["given__max_score"].astype(np.float64), given_start)

    fps = dict(zip(keys, z["video_container_fps"], strict=True))
    feats = {k: z["feat__" + k.replace("/", "__")] for k in keys}
    for prefix, preset in EVAL_MODELS.items():
        if f"{prefix}__rec_max_score" not in z.files:
            continue
        model = TMK.preset(preset)
        db = {k: model.descriptor(feats[k], sampling_timestamps(len(feats[k]), fps[k]))
              for k in videos}
        scores, starts = [], []
        for qi, vi in zip(rq, rv, strict=True):
            seg = segments[qi]
            f = feats[seg.video]
            lo, hi = int(np.floor(FPS * seg.begin_s)), int(np.floor(FPS * seg.end_s))
            crop = f[lo:hi] if lo < hi else f
            fq = model.descriptor(crop, sampling_timestamps(len(crop), fps[seg.video]))
            n_v = len(feats[videos[vi]])
            best, off = model.score_max(fq, db[videos[vi]], np.arange(-n_v, 0))
            scores.append(float(best[0]))
            starts.append(-float(off[0]) / FPS)
        rel_close(np.array(scores, np.float32), z[f"{prefix}__rec_max_score"], CURVE_TOL,
                  f"{prefix} VCDB scores")
        np.testing.assert_allclose(starts, z[f"{prefix}__rec_pred_start_s"], rtol=0, atol=1e-9)
        check_model(prefix, np.array(scores, np.float32).astype(np.float64), np.array(starts))


def check_evve(z) -> None:
    entries = []
    for fname, text in zip(z["dat_files"], z["dat_texts"], strict=True):
        entries += parse_evve_dat(str(fname), text=str(text))
    by_key = {e.key: e for e in entries}
    keys = [str(k) for k in z["video_keys"]]
    assert sorted(by_key) == sorted(keys)
    for k, split, lab, ev in zip(keys, z["video_split"], z["video_pos_null"], z["video_event"],
                                 strict=True):
        e = by_key[k]
        assert (e.split, e.label, e.event) == (str(split), int(lab), str(ev))
    db_keys = [str(k) for k in z["db_keys"]]
    q_keys = [str(k) for k in z["query_keys"]]
    q_events = [by_key[k].event for k in q_keys]
    db_events = [by_key[k].event for k in db_keys]
    db_labels = np.array([by_key[k].label for k in db_keys])

    given = evve_map(z["given__q_db_score"], q_events, db_events, db_labels)
    np.testing.assert_allclose(given.ap_per_query, z["given__ap_per_query"], rtol=0, atol=METRIC_TOL)
    assert abs(given.map_pooled - float(z["given__map"])) <= METRIC_TOL
    assert abs(given.map_event_mean - float(z["given__mean_of_event_means"])) <= METRIC_TOL

    fps = dict(zip(keys, z["video_container_fps"], strict=True))
    length = int(z["length"])
    offsets = np.arange(-length, length)
    for prefix, preset in EVAL_MODELS.items():
        if f"{prefix}__q_db_max_score" not in z.files:
            continue
        model = TMK.preset(preset)

        def desc(k: str, model=model) -> torch.Tensor:
            f = z["feat__" + k.replace("/", "__")]
            return model.descriptor(f, sampling_timestamps(len(f), fps[k]))

        db = torch.stack([desc(k) for k in db_keys])
        qs = [desc(k) for k in q_keys]
        best = [model.score_max(q, db, offsets) for q in qs]
        scores = torch.stack([b[0] for b in best]).numpy()
        offs = torch.stack([b[1] for b in best]).numpy()
        rel_close(scores, z[f"{prefix}__q_db_max_score"], CURVE_TOL, f"{prefix} EVVE scores")
        assert_offsets_or_near_tie(model, qs, db, offs, z[f"{prefix}__q_db_argmax_offset"],
                                   scale=float(np.abs(z[f"{prefix}__q_db_max_score"]).max()))
        res = evve_map(scores, q_events, db_events, db_labels)
        np.testing.assert_allclose(res.ap_per_query, z[f"{prefix}__ap_per_query_qe_none"],
                                   rtol=0, atol=METRIC_TOL)
        assert abs(res.map_pooled - float(z[f"{prefix}__map_qe_none"])) <= METRIC_TOL
        n1, n2 = int(z["N1"]), int(z["N2"])
        top10 = np.argsort(-scores[0], kind="stable")[:n1]
        np.testing.assert_array_equal(top10, z[f"{prefix}__qe_q0_top10_db_index"])
        for kind in ("aqe", "don"):
            expanded = [expand_query(kind, model, qs[i], db, scores[i], offs[i], n1, n2,
                                     mode="reference") for i in range(len(qs))]
            rel_close(expanded[0], z[f"{prefix}__qe_q0_{kind}_fv"], DESC_TOL, f"{prefix} {kind} q0")
            qe_scores = torch.stack([model.score_max(e, db, offsets)[0] for e in expanded]).numpy()
            qe = evve_map(qe_scores, q_events, db_events, db_labels)
            assert abs(qe.map_pooled - float(z[f"{prefix}__map_qe_{kind}"])) <= METRIC_TOL, kind


CHECKERS = {
    "vonmises_": check_vonmises,
    "tmk_pair_": check_tmk_pair_file,
    "tmk_batch_padded_": check_batch_padded,
    "tmk_norm_variants_": check_norm_variants,
    "tmk_shift_fv_": check_shift_fv,
    "frontend_rmac_rules": check_frontend_rules,
    "eval_localization": check_localization,
    "eval_vcdb_segments": check_vcdb,
    "eval_evve_map": check_evve,
}


def test_golden_directory_present_or_skipped() -> None:
    if not FILES:
        pytest.skip(f"no golden files in {GOLDEN_DIR} (set GOLDEN_DIR)")
    assert all(f.suffix == ".npz" for f in FILES)


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_golden_file(path: Path) -> None:
    checker = next((fn for prefix, fn in CHECKERS.items() if path.name.startswith(prefix)), None)
    if checker is None:
        pytest.fail(f"{path.name}: no checker for this file-name prefix; known: {sorted(CHECKERS)}")
    with np.load(path, allow_pickle=False) as z:
        checker(z)


def test_localisation_file_without_offsets_and_curves(tmp_path: Path) -> None:
    """The golden README allows long-item localisation files to omit ``offsets`` and
    ``pair_curves``; the checker then scores ``arange(-length, length)`` and compares maxima."""
    src = GOLDEN_DIR / "eval_localization.npz"
    if not src.is_file():
        pytest.skip(f"{src} not present")
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k not in ("offsets", "pair_curves")}
        assert np.array_equal(z["offsets"].reshape(-1), np.arange(-int(z["length"]), int(z["length"])))
    slim = tmp_path / "eval_localization_long.npz"
    np.savez(slim, **arrays)
    with np.load(slim, allow_pickle=False) as z:
        check_localization(z)
    # and a wrong maximum is still caught
    arrays["pair_max"] = arrays["pair_max"] * 1.5
    np.savez(slim, **arrays)
    with np.load(slim, allow_pickle=False) as z, pytest.raises(AssertionError):
        check_localization(z)

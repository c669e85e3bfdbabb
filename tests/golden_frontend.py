"""Front-end checks of ``frontend_rmac_rules*.npz`` (called from test_golden.py)."""

from __future__ import annotations

import av
import numpy as np
import torch

from extractors.decode.reader import resized_size, to_model_input
from extractors.frame.pca import fit_pca
from extractors.frame.rmac import aggregate, rmac_regions

# swscale's bilinear vs PIL's antialiased bilinear: about one grey level apart.
PREPROCESS_TOL = 0.03  # in normalised units (1 grey level = 1/255/0.225 = 0.017)


def check_frontend_features(z) -> None:
    # R-MAC grids, every case of the file (hidden sizes too).
    starts = z["regions_start"]
    for c, ((h, w), L) in enumerate(zip(z["regions_hw"], z["regions_L"], strict=True)):
        ref = z["regions_xywh"][starts[c]:starts[c + 1]]
        ours = rmac_regions(int(h), int(w), int(L))
        np.testing.assert_array_equal(ours, ref, err_msg=f"regions of a {h}x{w} map, L={L}")
    # Resize rule.
    area = int(z["scale_image_area"])
    for (w, h), s, (rw, rh) in zip(z["scale_input_wh"], z["scale_short_side"], z["scale_resized_wh"],
                                   strict=True):
        ow, oh = resized_size(int(w), int(h), area)
        assert min(ow, oh) == s and (ow, oh) == (rw, rh), f"{w}x{h} -> {(ow, oh)}, expected {(rw, rh)}"
    # Pre-processing of one frame with FFmpeg's scaler.
    frame = z["pre_frame_uint8_hwc"]
    ref = z["pre_tensor_chw"]
    h, w = ref.shape[1:]
    img = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
        width=w, height=h, format="rgb24", interpolation="BILINEAR").to_ndarray()
    ours = to_model_input(img[None])[0]
    assert ours.shape == ref.shape
    assert float(np.abs(ours - ref).max()) <= PREPROCESS_TOL
    # PCA fit: mean exactly, rows up to sign.
    mean, dvt = fit_pca(z["pca_fit_input"])
    np.testing.assert_allclose(mean, z["pca_fit_mean"], rtol=0, atol=1e-6)
    ref_dvt = z["pca_fit_DVt"]
    signs = np.sign((dvt * ref_dvt).sum(1, keepdims=True))
    np.testing.assert_allclose(dvt * signs, ref_dvt, rtol=0, atol=1e-4 * np.abs(ref_dvt).max())
    # Aggregation with the stored PCA.
    mean_t, dvt_t = torch.from_numpy(z["pca_fit_mean"]), torch.from_numpy(z["pca_fit_DVt"])
    for key in [k for k in z.files if k.startswith("agg_") and k.endswith("__fmap")]:
        case = key[: -len("__fmap")]
        fmap = torch.from_numpy(z[key])
        regions = z[f"{case}__regions_xywh"]
        np.testing.assert_array_equal(rmac_regions(fmap.shape[2], fmap.shape[3], 3), regions)
        desc = aggregate(fmap, regions, mean_t, dvt_t).numpy()
        np.testing.assert_allclose(desc, z[f"{case}__frame_desc"], rtol=0, atol=1e-5)

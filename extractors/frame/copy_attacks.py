"""Copy attacks as batched, seeded image augmentations (torch, no Python loop over images).

The views a self-supervised copy-detection model learns to match
(:mod:`extractors.frame.selfsup`): what people do to a video they re-upload.
Every function takes ``x (B, 3, S, S) float32`` in ``[0, 1]`` and a
``torch.Generator``; every random choice is drawn from that generator, so a
batch of views is a deterministic function of the images and the seed.

    geometry       random crop (zoom in), flip, and placement into a smaller window of the output:
                   letterbox / pillarbox / padding on a solid fill, or picture-in-picture over another
                   image of the batch
    overlays       logo boxes and text-like glyph strips in random colours
    colour         brightness, contrast, saturation, hue rotation, gamma
    blur           Gaussian, per-image sigma (separable, grouped convolution)
    noise          additive Gaussian
    jpeg           8x8 block DCT quantised with the JPEG luminance table at a low quality
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F  # noqa: N812 (torch's convention)


@dataclass(frozen=True)
class AttackSettings:
    """Probabilities and ranges of :func:`copy_attack` (defaults: SSCD-like strength)."""

    crop_scale: tuple[float, float] = (0.35, 1.0)  # area share of the input kept by the crop
    flip: float = 0.3
    place: float = 0.45  # probability of placing the picture into a smaller window of the output
    place_scale: tuple[float, float] = (0.4, 0.9)  # side of that window / side of the output
    pip: float = 0.5  # share of placements drawn over another image (else a solid fill: bars)
    overlay: float = 0.4
    colour: float = 0.8
    blur: float = 0.3
    noise: float = 0.3
    jpeg: float = 0.3
    jpeg_quality: tuple[float, float] = (10.0, 50.0)


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _coin(g: torch.Generator, n: int, p: float) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


def geometry(x: torch.Tensor, g: torch.Generator, s: AttackSettings) -> torch.Tensor:
    """Crop, flip, then place into a window of the output (bars or picture-in-picture)."""
    B = x.shape[0]
    # crop window in the input, normalised coordinates [-1, 1]: centre (cx, cy), half sides (hx, hy)
    area = _uniform(g, B, *s.crop_scale)
    aspect = torch.exp(_uniform(g, B, math.log(3 / 4), math.log(4 / 3)))
    hx = (torch.sqrt(area * aspect)).clamp(max=1.0)
    hy = (torch.sqrt(area / aspect)).clamp(max=1.0)
    cx = (torch.rand(B, generator=g) * 2 - 1) * (1 - hx)
    cy = (torch.rand(B, generator=g) * 2 - 1) * (1 - hy)
    hx = torch.where(_coin(g, B, s.flip), -hx, hx)
    # destination window in the output: the whole output, or a smaller one (bars / picture-in-picture)
    placed = _coin(g, B, s.place)
    letterbox = _coin(g, B, 0.5)
    side = _uniform(g, B, *s.place_scale)
    other = _uniform(g, B, 0.85, 1.0)
    pip = _coin(g, B, s.pip)
    # bars keep one side whole (letterbox or pillarbox); picture-in-picture shrinks both
    dwx = torch.where(placed, torch.where(pip | ~letterbox, side, other), torch.ones(B))
    dwy = torch.where(placed, torch.where(pip | letterbox, side, other), torch.ones(B))
    dcx = (torch.rand(B, generator=g) * 2 - 1) * (1 - dwx)
    dcy = (torch.rand(B, generator=g) * 2 - 1) * (1 - dwy)
    # output coordinate u maps to input coordinate cx + (u - dcx) * hx / dwx
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0] = hx / dwx
    theta[:, 0, 2] = cx - dcx * hx / dwx
    theta[:, 1, 1] = hy / dwy
    theta[:, 1, 2] = cy - dcy * hy / dwy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    S = x.shape[-1]
    u = (torch.arange(S, dtype=torch.float32) + 0.5) / S * 2 - 1
    inside = (((u[None, :] - dcx[:, None]).abs() <= dwx[:, None])[:, None, :]
              & ((u[None, :] - dcy[:, None]).abs() <= dwy[:, None])[:, :, None])  # (B, S, S)
    fill_colour = torch.rand(B, 3, 1, 1, generator=g) * (torch.rand(B, 1, 1, 1, generator=g) < 0.3)
    fill = torch.where(pip[:, None, None, None], x.roll(1, dims=0), fill_colour.expand_as(x))
    return torch.where(inside[:, None], warped, fill)


def overlays(x: torch.Tensor, g: torch.Generator, p: float, slots: int = 4) -> torch.Tensor:
    """Logo boxes and text-like strips of random glyph blocks, in random colours."""
    B, _, S, _ = x.shape
    on = _coin(g, B, p)[:, None] & _coin(g, B * slots, 0.6).view(B, slots)  # (B, slots)
    w = _uniform(g, B * slots, 0.1, 0.6).view(B, slots)
    h = _uniform(g, B * slots, 0.04, 0.15).view(B, slots)
    x0 = torch.rand(B, slots, generator=g) * (1 - w)
    y0 = torch.rand(B, slots, generator=g) * (1 - h)
    u = (torch.arange(S, dtype=torch.float32) + 0.5) / S
    inx = (u[None, None] >= x0[..., None]) & (u[None, None] < (x0 + w)[..., None])  # (B, slots, S)
    iny = (u[None, None] >= y0[..., None]) & (u[None, None] < (y0 + h)[..., None])
    box = iny[..., :, None] & inx[..., None, :]  # (B, slots, S, S)
    # text: a grid of random on/off glyph cells inside the box (cells of ~S/32 pixels); logos: solid
    cells = torch.rand(B, slots, 8, 32, generator=g) < 0.5
    glyphs = F.interpolate(cells.float(), size=(S, S), mode="nearest") > 0.5
    text = _coin(g, B * slots, 0.6).view(B, slots, 1, 1)
    mask = box & (glyphs | ~text) & on[..., None, None]
    colour = torch.rand(B, slots, 3, generator=g)
    alpha = _uniform(g, B * slots, 0.6, 1.0).view(B, slots)
    a = mask.float() * alpha[..., None, None]  # (B, slots, S, S); slot k is drawn over slots < k
    above = torch.flip(torch.cumprod(torch.flip(1 - a, [1]), 1), [1])  # prod_{j >= k} (1 - a_j)
    covered_after = torch.cat([above[:, 1:], torch.ones_like(above[:, :1])], 1)  # prod_{j > k} (1 - a_j)
    paint = torch.einsum("bkhw,bkc->bchw", a * covered_after, colour)
    out = x * above[:, :1] + paint
    return out


def colour(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    """Brightness, contrast, saturation, hue rotation (in YIQ) and gamma."""
    B = x.shape[0]
    on = _coin(g, B, p)[:, None, None, None]
    bright = _uniform(g, B, 0.6, 1.4)[:, None, None, None]
    contrast = _uniform(g, B, 0.6, 1.4)[:, None, None, None]
    sat = _uniform(g, B, 0.0, 1.6)[:, None, None, None]
    hue = _uniform(g, B, -math.pi / 3, math.pi / 3)
    gamma = torch.exp(_uniform(g, B, math.log(0.5), math.log(2.0)))[:, None, None, None]
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = torch.linalg.inv(to_yiq)
    c, s_ = torch.cos(hue), torch.sin(hue)
    rot = torch.zeros(B, 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s_, s_, c
    mix = from_yiq[None] @ rot @ to_yiq[None]  # (B, 3, 3)
    y = torch.einsum("bij,bjhw->bihw", mix, x)
    grey = (y * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
    y = grey + (y - grey) * sat
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * contrast + mean) * bright
    y = y.clamp(0, 1) ** gamma
    return torch.where(on, y, x)


def blur(x: torch.Tensor, g: torch.Generator, p: float, radius: int = 4) -> torch.Tensor:
    """Gaussian blur with a per-image sigma in [0.5, 2.5] pixels (separable grouped convolution)."""
    B, C, H, W = x.shape
    sigma = torch.where(_coin(g, B, p), _uniform(g, B, 0.5, 2.5), torch.full((B,), 1e-3))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(C, 0)  # (B*C, 2r+1)
    y = F.pad(x.reshape(1, B * C, H, W), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=B * C)
    y = F.conv2d(y, k[:, None, :, None], groups=B * C)
    return y.view(B, C, H, W)


def noise(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    B = x.shape[0]
    sd = torch.where(_coin(g, B, p), _uniform(g, B, 0.01, 0.08), torch.zeros(B))[:, None, None, None]
    return (x + sd * torch.randn(x.shape, generator=g)).clamp(0, 1)


_JPEG_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.float()


def jpeg(x: torch.Tensor, g: torch.Generator, p: float, quality: tuple[float, float]) -> torch.Tensor:
    """JPEG-like compression: YCbCr, 8x8 block DCT, rounding with the quality-scaled luminance table."""
    B, C, H, W = x.shape
    on = _coin(g, B, p)
    q = _uniform(g, B, *quality)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q) / 100
    table = (_JPEG_LUMA[None] * scale[:, None, None]).clamp(min=1)  # (B, 8, 8)
    to_ycc = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    ycc = torch.einsum("ij,bjhw->bihw", to_ycc, x) * 255
    Hp, Wp = H // 8 * 8, W // 8 * 8
    blocks = ycc[:, :, :Hp, :Wp].reshape(B, C, Hp // 8, 8, Wp // 8, 8).transpose(3, 4)  # (B, C, h, w, 8, 8)
    D = _dct_matrix()
    coef = D @ blocks @ D.T
    chroma = torch.tensor([1.0, 2.0, 2.0]).view(1, 3, 1, 1, 1, 1)  # chroma quantised more coarsely
    t = table[:, None, None, None] * chroma
    rec = D.T @ (torch.round(coef / t) * t) @ D
    out = ycc.clone()
    out[:, :, :Hp, :Wp] = rec.transpose(3, 4).reshape(B, C, Hp, Wp)
    rgb = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_ycc), out / 255).clamp(0, 1)
    return torch.where(on[:, None, None, None], rgb, x)


def copy_attack(x: torch.Tensor, g: torch.Generator, s: AttackSettings | None = None) -> torch.Tensor:
    """A random combination of copy attacks on every image of ``x (B, 3, S, S)`` in ``[0, 1]``."""
    s = s or AttackSettings()
    y = geometry(x, g, s)
    y = overlays(y, g, s.overlay)
    y = colour(y, g, s.colour)
    y = blur(y, g, s.blur)
    y = noise(y, g, s.noise)
    return jpeg(y, g, s.jpeg, s.jpeg_quality)

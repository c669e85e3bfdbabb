"""Decoding at a fixed 15 fps with PyAV (spec sections 1 and 7).

Sampling rule: the nominal instant ``n / 15`` s after the first frame is
snapped to the nearest source frame by presentation time (ties go to the
even-numbered frame, which is NumPy's round-half-to-even of the spec rule
``t_n = 15 round(n f_c / 15) / f_c`` for constant frame rates).  Instants are
produced while ``n / 15 < t_last + 1 / (2 f_c)``; sources below 15 fps repeat
frames.  The real presentation time of every chosen frame is kept.

Resizing happens in FFmpeg's scaler (``swscale`` bilinear, which filters
over the whole footprint when shrinking, like PIL's antialiased bilinear):
shorter side ``s = rint(min(W, H) / sqrt(W H / area))``, longer side
``int(s * long / short)``, RGB.  Display rotation (90/180/270) is applied.

Every failure is a :class:`DecodeError` naming the file and the cause; a
corrupt packet inside an otherwise good file is skipped with a warning.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from extractors.decode.timestamps import DEFAULT_CONTAINER_FPS
from extractors.runtime.errors import VideoAlignError
from extractors.runtime.timebase import FPS

log = logging.getLogger(__name__)

DEFAULT_IMAGE_AREA = 12_000
DEFAULT_MAX_PIXELS = 8192 * 8192
"""Largest frame (coded width x height) we agree to decode."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DecodeError(VideoAlignError):
    """A video that cannot be decoded; ``str()`` is one line naming file and cause."""

    def __init__(self, path: str | os.PathLike, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


def resized_size(width: int, height: int, image_area: int = DEFAULT_IMAGE_AREA) -> tuple[int, int]:
    """``(w, h)`` after scaling the shorter side to ``rint(min / sqrt(W H / area))``."""
    if width <= 0 or height <= 0:
        raise ValueError(f"bad frame size {width}x{height}")
    short, long = min(width, height), max(width, height)
    s = int(np.rint(short / math.sqrt(width * height / image_area)))
    s = max(s, 1)
    other = int(s * long / short)
    return (other, s) if width >= height else (s, other)


@dataclass
class VideoInfo:
    """What the container says and what decoding found."""

    path: str
    size_bytes: int
    mtime: float
    width: int = 0
    height: int = 0
    rotation: int = 0
    container_fps: float = DEFAULT_CONTAINER_FPS
    fps_source: str = "stream average rate"
    duration_s: float = 0.0
    codec: str = ""
    decoded_frames: int = 0
    corrupt_packets: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class DecodedVideo:
    """15-fps samples of one video.

    Attributes:
        frames: ``(N, h, w, 3) uint8`` RGB, resized.
        timestamps_s: ``(N,) float64`` presentation time of each chosen source frame,
            seconds since the first frame.
        source_index: ``(N,) int64`` index of the chosen source frame.
    """

    frames: np.ndarray
    timestamps_s: np.ndarray
    source_index: np.ndarray
    info: VideoInfo


@dataclass
class _Clock:
    """Exact rational presentation times: ``t = (pts - pts0) * num / den`` seconds."""

    num: int
    den: int
    pts0: int | None = None


_WARNED: set[str] = set()


def _warn_once(message: str, prefix: str = "") -> None:
    """Log ``prefix + message`` as a warning the first time this process meets ``message``, then at debug
    level: a corpus without a usable hardware decoder gets one line per decoder process, not one per file."""
    level = logging.DEBUG if message in _WARNED else logging.WARNING
    _WARNED.add(message)
    log.log(level, "%s%s%s", prefix, message, "" if level == logging.DEBUG else " (said once per process)")


def hardware_decoding(device_type: str | None) -> bool:
    """Whether ``device_type`` (the ``hwaccel`` setting) asks for a hardware decoder."""
    return bool(device_type) and device_type != "none"


def _hwaccel(device_type: str | None):
    """A PyAV ``HWAccel`` for ``device_type`` (e.g. ``cuda``, ``vaapi``) with software fallback."""
    if not hardware_decoding(device_type):
        return None
    from av.codec.hwaccel import HWAccel, hwdevices_available

    if device_type not in hwdevices_available():
        _warn_once(f"hardware decoding {device_type!r} is not available in this FFmpeg (have: "
                   f"{', '.join(hwdevices_available()) or 'none'}); decoding in software")
        return None
    return HWAccel(device_type=device_type, allow_software_fallback=True)


def _open(path: Path, hwaccel: str | None = None):
    import av

    if not path.exists():
        raise DecodeError(path, "file not found")
    if not os.access(path, os.R_OK):
        raise DecodeError(path, "permission denied (file not readable)")
    if path.stat().st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    accel = _hwaccel(hwaccel)
    try:
        if accel is not None:
            try:
                return av.open(str(path), mode="r", metadata_errors="ignore", hwaccel=accel)
            except av.error.FFmpegError as exc:  # no device, no permission, unsupported codec...
                _warn_once(f"hardware decoding ({hwaccel}) unavailable ({_reason(exc)}); decoding in software",
                           f"{path}: ")
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise DecodeError(path, "cannot read the container: not a video, truncated or corrupt "
                                f"({_reason(exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DecodeError(path, f"cannot open ({exc})") from None


def _reason(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    return msg.split(": '")[0].strip()


def _container_fps(stream) -> tuple[float, str]:
    for attr in ("average_rate", "guessed_rate", "base_rate"):
        rate = getattr(stream, attr, None)
        if rate:
            value = float(rate)
            if 0.1 <= value <= 1000:
                return value, f"stream {attr.replace('_', ' ')}"
    return DEFAULT_CONTAINER_FPS, "default (container gives no frame rate)"


def probe(path: str | os.PathLike) -> VideoInfo:
    """Container facts without decoding (raises :class:`DecodeError`)."""
    p = Path(path)
    container = _open(p)
    try:
        return _info(p, container, _video_stream(p, container))
    finally:
        container.close()


IMAGE_FORMATS = ("image2", "image2pipe", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe",
                 "tiff_pipe", "gif", "gif_pipe", "svg_pipe", "pgm_pipe", "ppm_pipe")


def _video_stream(path: Path, container):
    fmt = getattr(container.format, "name", "") or ""
    if any(name in IMAGE_FORMATS for name in fmt.split(",")):
        raise DecodeError(path, f"an image, not a video (format {fmt})")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise DecodeError(path, f"no video stream (streams: {', '.join(kinds)})")
    return container.streams.video[0]


def _info(path: Path, container, stream) -> VideoInfo:
    st = path.stat()
    fps, fps_source = _container_fps(stream)
    duration = 0.0
    if container.duration:
        duration = container.duration / 1_000_000
    elif stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    return VideoInfo(str(path), st.st_size, st.st_mtime, stream.codec_context.width,
                     stream.codec_context.height, 0, fps, fps_source, duration,
                     stream.codec_context.name or "")


def iter_samples(path: str | os.PathLike, image_area: int = DEFAULT_IMAGE_AREA,
                 fps: float = FPS, chunk: int = 64, threads: int = 0,
                 max_pixels: int = DEFAULT_MAX_PIXELS, hwaccel: str | None = None,
                 too_large: str | None = None,
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, VideoInfo]]:
    """Decode ``path`` and yield chunks of 15-fps samples as they become available.

    Yields:
        ``(frames (n, h, w, 3) uint8, timestamps_s (n,) float64, source_index (n,) int64, info)``;
        ``info`` is the same object throughout and complete after the last chunk.

    Raises:
        DecodeError: unreadable, not a video, no video stream, no decodable frame,
            or a frame larger than ``max_pixels``.

    ``hwaccel`` (``cuda``, ``vaapi``, ...) decodes on that device when FFmpeg has it,
    falling back to software decoding otherwise.
    """
    import av

    p = Path(path)
    container = _open(p, hwaccel)
    try:
        stream = _video_stream(p, container)
        info = _info(p, container, stream)
        if info.width * info.height > max_pixels:
            raise DecodeError(p, f"frame size {info.width}x{info.height} "
                                 f"{too_large or f'exceeds the limit of {max_pixels} pixels'}")
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        tb = stream.time_base
        clock = _Clock(tb.numerator, tb.denominator) if tb else _Clock(0, 1)
        if clock.num == 0:  # no time base: synthesise one from the frame rate
            f = Fraction(1.0 / info.container_fps).limit_denominator(1_000_000)
            clock = _Clock(f.numerator, f.denominator)
            info.warnings.append("no time base; frame times synthesised from the frame rate")
        sampler = _Sampler(info, clock, fps, image_area, chunk)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                info.corrupt_packets += 1
                if info.corrupt_packets <= 3:
                    log.warning("%s: skipped a corrupt packet at pts %s (%s)", p, packet.pts,
                                _reason(exc))
                continue
            for frame in frames:
                yield from sampler.push(frame)
        yield from sampler.finish()
        if info.corrupt_packets:
            info.warnings.append(f"{info.corrupt_packets} corrupt packet(s) skipped")
        if sampler.emitted == 0:
            raise DecodeError(p, "no decodable video frame"
                              + (f" ({info.corrupt_packets} corrupt packets)"
                                 if info.corrupt_packets else ""))
    except av.error.FFmpegError as exc:
        raise DecodeError(p, f"decoding failed ({_reason(exc)})") from None
    except MemoryError:
        raise DecodeError(p, "out of memory while decoding") from None
    finally:
        container.close()


def decode_video(path: str | os.PathLike, image_area: int = DEFAULT_IMAGE_AREA,
                 fps: float = FPS, threads: int = 0,
                 max_pixels: int = DEFAULT_MAX_PIXELS, hwaccel: str | None = None) -> DecodedVideo:
    """Decode a whole video at ``fps`` (see :func:`iter_samples`)."""
    frames, times, index = [], [], []
    info = None
    for chunk in iter_samples(path, image_area, fps, threads=threads, max_pixels=max_pixels, hwaccel=hwaccel):
        f, t, i, info = chunk
        frames.append(f)
        times.append(t)
        index.append(i)
    assert info is not None  # iter_samples raises when nothing was decoded
    return DecodedVideo(np.concatenate(frames), np.concatenate(times), np.concatenate(index), info)


class _Sampler:
    """Streaming nearest-frame selection on exact rational times."""

    def __init__(self, info: VideoInfo, clock: _Clock, fps: float, image_area: int,
                 chunk: int) -> None:
        self.info, self.clock, self.image_area, self.chunk = info, clock, image_area, chunk
        self.fps_frac = Fraction(fps).limit_denominator(1000)
        self.prev = None  # (frame, rel_pts, index, rgb or None)
        self.next_n = 0
        self.emitted = 0
        self.size: tuple[int, int] | None = None
        self.buf_f: list[np.ndarray] = []
        self.buf_t: list[float] = []
        self.buf_i: list[int] = []
        self.last_pts: int | None = None

    # instant n (seconds) = n / fps;  frame time = rel_pts * num / den
    def _targets_before(self, rel_pts: int) -> int:
        """Number of instants ``n`` with ``n / fps < rel_pts * num / den``."""
        x = Fraction(rel_pts * self.clock.num, self.clock.den) * self.fps_frac
        return math.ceil(x)

    def push(self, frame) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, VideoInfo]]:
        pts = frame.pts
        idx = self.info.decoded_frames
        if pts is None:
            pts = (self.last_pts + 1) if self.last_pts is not None else 0
        if self.clock.pts0 is None:
            self.clock.pts0 = pts
            self.info.rotation = int(getattr(frame, "rotation", 0) or 0) % 360
        if self.last_pts is not None and pts <= self.last_pts:
            log.debug("%s: frame with non-increasing pts %s skipped", self.info.path, pts)
            return
        self.last_pts = pts
        self.info.decoded_frames += 1
        rel = pts - self.clock.pts0
        cur = [frame, rel, idx, None]
        if self.prev is None:
            self.prev = cur
            return
        # instants in [t_prev, t_cur) are decided now: nearer to prev or to cur
        n_end = self._targets_before(rel)
        if n_end > self.next_n:
            ns = np.arange(self.next_n, n_end)
            # 2 n / fps  vs  (t_prev + t_cur): compare in exact rationals
            lhs = [Fraction(2 * int(n), 1) / self.fps_frac for n in ns]
            mid = Fraction((self.prev[1] + rel) * self.clock.num, self.clock.den)
            for n, v in zip(ns, lhs, strict=True):
                choose_cur = v > mid or (v == mid and cur[2] % 2 == 0)
                yield from self._emit(cur if choose_cur else self.prev, int(n))
            self.next_n = n_end
        self.prev = cur

    def finish(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, VideoInfo]]:
        if self.prev is not None:
            # instants up to half a source frame past the last frame
            half = Fraction(1, 2) / Fraction(self.info.container_fps).limit_denominator(100000)
            end = Fraction(self.prev[1] * self.clock.num, self.clock.den) + half
            n_end = math.ceil(end * self.fps_frac)
            for n in range(self.next_n, max(n_end, self.next_n + (self.emitted == 0))):
                yield from self._emit(self.prev, n)
            self.next_n = n_end
        yield from self._flush()

    def _rgb(self, entry: list) -> np.ndarray:
        if entry[3] is None:
            frame = entry[0]
            rot = self.info.rotation
            w, h = frame.width, frame.height
            if self.size is None:
                disp = (h, w) if rot in (90, 270) else (w, h)
                self.size = resized_size(disp[0], disp[1], self.image_area)
            tw, th = self.size
            cw, ch = (th, tw) if rot in (90, 270) else (tw, th)
            img = frame.reformat(width=cw, height=ch, format="rgb24",
                                 interpolation="BILINEAR").to_ndarray()
            if rot:
                # display matrix rotates counter-clockwise by `rotation` degrees
                img = np.ascontiguousarray(np.rot90(img, k=rot // 90))
            entry[3] = img
        return entry[3]

    def _emit(self, entry: list, n: int):
        self.buf_f.append(self._rgb(entry))
        self.buf_t.append(float(Fraction(entry[1] * self.clock.num, self.clock.den)))
        self.buf_i.append(entry[2])
        self.emitted += 1
        if len(self.buf_f) >= self.chunk:
            yield from self._flush()

    def _flush(self):
        if self.buf_f:
            out = (np.stack(self.buf_f), np.asarray(self.buf_t, dtype=np.float64),
                   np.asarray(self.buf_i, dtype=np.int64), self.info)
            self.buf_f, self.buf_t, self.buf_i = [], [], []
            yield out


def to_model_input(frames: np.ndarray) -> np.ndarray:
    """``(N, h, w, 3) uint8`` RGB -> ``(N, 3, h, w) float32`` normalised with ImageNet mean/std."""
    x = frames.astype(np.float32) * np.float32(1 / 255)
    x -= np.asarray(IMAGENET_MEAN, dtype=np.float32)
    x /= np.asarray(IMAGENET_STD, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

"""The decode pool: one pipe per worker, so decoders killed at any moment - even in the middle of
writing a message - fail only their own video; time limits that interrupt decoding only."""

from __future__ import annotations

import signal

import pytest

from extractors.decode.pool import _limited, decode_messages
from extractors.runtime import failpoints
from tests.test_refresh import clip

SETTINGS = {"image_area": 12000, "fps": 15.0, "decode_threads": 1, "max_pixels": 1 << 26, "decode_workers": 2,
            "queue_chunks": 2, "video_time_limit_s": 120, "worker_memory_mb": 0}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("pool")
    return [str(clip(d / f"v{i}.mp4", seed=500 + i, seconds=2)) for i in range(6)]  # 30 frames each


def outcomes(videos, batch_size: int, **extra) -> tuple[dict[int, tuple], dict[int, int]]:
    """Terminal message and number of frames received, per video."""
    ends, frames = {}, {}
    for msg in decode_messages(list(enumerate(videos)), {**SETTINGS, "batch_size": batch_size, **extra}):
        if msg[0] == "chunk":
            frames[msg[1]] = frames.get(msg[1], 0) + len(msg[2])
        elif msg[0] in ("done", "error"):
            assert msg[1] not in ends, f"video {msg[1]} reported twice"
            ends[msg[1]] = msg
    return ends, frames


# (failpoint, batch size): every decoder process is killed at its n-th message, on every
# replacement too - before a chunk, before a "done", or half-way through writing a message
@pytest.mark.parametrize(("armed", "batch"), [
    ("decode_worker.send=die@3", 32),       # one video done (chunk, done), killed before the next chunk
    ("decode_worker.send=die@2", 16),       # killed between the two chunks of a video
    ("decode_worker.send=die@4", 16),       # killed before the first video's "done"
    ("decode_worker.mid_write=on@3", 32),   # half a chunk written, then SIGKILL
    ("decode_worker.mid_write=on@2", 32),   # half a "done" written, then SIGKILL
])
@pytest.mark.slow
def test_killed_decoders_fail_only_their_video_and_never_hang(videos, monkeypatch, armed, batch):
    monkeypatch.setenv(failpoints.ENV, armed)
    ends, frames = outcomes(videos, batch)
    assert set(ends) == set(range(len(videos)))  # every video answered exactly once, no hang
    failed = {i for i, m in ends.items() if m[0] == "error"}
    done = set(ends) - failed
    assert failed and all("crashed" in ends[i][3] for i in failed)
    assert all(frames[i] == 30 for i in done)  # a done video has all its frames
    monkeypatch.delenv(failpoints.ENV)
    again, _ = outcomes([videos[i] for i in sorted(failed)], batch)  # they fail only because of the kills
    assert all(m[0] == "done" for m in again.values())


@pytest.mark.slow
def test_every_other_video_is_done_when_each_decoder_dies_after_one(videos, monkeypatch):
    monkeypatch.setenv(failpoints.ENV, "decode_worker.send=die@3")
    ends, _ = outcomes(videos, 32, decode_workers=1)  # one decoder, replaced after each death
    assert [ends[i][0] for i in range(6)] == ["done", "error"] * 3


def test_a_time_limit_in_a_worker_is_reported_as_such(videos):
    ends, _ = outcomes(videos[:2], 8, video_time_limit_s=1e-4)
    assert all(m[0] == "error" and "time limit" in m[3] and "crashed" not in m[3] for m in ends.values())


def test_the_time_limit_is_not_armed_while_the_consumer_works():
    """Inline decoding yields chunks to the CNN: the alarm must be off while the consumer runs, so a
    slow consumer can never be interrupted outside the decoder's error handling."""
    before = signal.getsignal(signal.SIGALRM)
    it = _limited(iter([1, 2, 3]), seconds=50.0)
    assert next(it) == 1
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and signal.getsignal(signal.SIGALRM) == before
    assert list(it) == [2, 3]


def test_a_time_limit_hit_after_some_decoding_states_the_setting_not_what_was_left():
    """A video that used part of its budget on earlier chunks is stopped with the limit the operator set
    (2 s), not the remainder that happened to be left when the alarm fired."""
    import time

    from extractors.decode.pool import DecodeTimeoutError

    def chunks():
        time.sleep(0.05)  # the first chunk takes part of the budget
        yield 1
        time.sleep(30)  # the decoder then hangs: the alarm interrupts it

    it = _limited(chunks(), seconds=2.0)
    assert next(it) == 1
    with pytest.raises(DecodeTimeoutError, match=r"^decoding exceeded the time limit of 2 s$"):
        next(it)


def test_inline_decoding_with_a_time_limit_finishes_every_video(videos):
    ends, frames = outcomes(videos[:2], 8, decode_workers=0, video_time_limit_s=30)
    assert all(m[0] == "done" for m in ends.values()) and all(n == 30 for n in frames.values())


def test_a_frame_too_large_for_the_memory_cap_is_refused_inline_too(tmp_path):
    """No address-space cap can apply to inline decoding: a frame that cannot fit the cap is refused
    before it is decoded, with a message that names the cap."""
    from pipeline.datasets.synthetic import Segment, render, write_video

    big = write_video(tmp_path / "big.mp4", render([Segment(1, 0, 0.2)], 15, 640, 480), 15)
    for workers in (0, 1):
        ends, frames = outcomes([str(big)], 8, decode_workers=workers, worker_memory_mb=2 if workers == 0 else 900)
        if workers == 0:
            assert ends[0][0] == "error" and "cap of 2 MB per decoder" in ends[0][3] and not frames
        else:
            assert ends[0][0] == "done"


def test_a_memory_cap_too_low_to_decode_anything_says_so():
    from extractors.decode.pool import DecoderSetupError

    with pytest.raises(DecoderSetupError, match="worker_memory_mb=64 is too low"):
        outcomes(["/nonexistent.mp4"], 8, decode_workers=1, worker_memory_mb=64)


def test_hardware_decoding_workers_run_without_the_address_space_cap(videos):
    """A GPU driver reserves far more address space than any cap (on an H200 every NVDEC open failed
    under the 8 GB default and fell back to software), so with ``hwaccel`` the cap is not applied:
    the cap that stops a plain decoder from starting (above) decodes here (in software where, as in
    CI, this FFmpeg cannot reach a GPU)."""
    ends, frames = outcomes(videos[:2], 8, decode_workers=1, worker_memory_mb=64, hwaccel="cuda")
    assert [ends[i][0] for i in range(2)] == ["done", "done"]
    assert frames == {0: 30, 1: 30}


def test_fitting_samples_are_even_and_bounded():
    import numpy as np

    from pipeline.steps.features.fitting import _EvenSample

    s = _EvenSample(10)
    for start in range(0, 1000, 64):  # a 1000-frame video arriving in chunks
        s.add(np.arange(start, min(start + 64, 1000))[:, None, None, None].repeat(3, axis=3).astype(np.uint16))
        assert len(s.kept) < 20  # never more than 2 n frames held
    picked = s.result()[:, 0, 0, 0]
    assert len(picked) == 10 and picked[0] == 0 and picked[-1] > 900
    gaps = np.diff(picked)
    assert gaps.min() >= 64 and gaps.max() <= 2 * gaps.min()  # evenly spread over the whole video

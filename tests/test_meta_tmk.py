"""Meta's TMK+PDQF ``.tmk`` files: read and written byte for byte, scored as ``tmk-two-level-score``,
hashed as ``tmk-hash-video``.

``tests/data/meta_tmk/*.tmk`` were made by Meta's own tools, built from ``facebook/ThreatExchange``
(``tmk/cpp``, ``make tmk-hash-video tmk-two-level-score``, g++ 12) with the ffmpeg of
``imageio-ffmpeg`` 0.8.1: ``tmk-hash-video -f FFMPEG -i CLIP.mp4 -o CLIP.tmk`` on the clips
``06_imageio_cockatoo`` and ``17_webrtc_chrome_stopmotion`` of ``../shared/videos``, and on an excerpt
of the cockatoo (``ffmpeg -ss 2 -i 06_imageio_cockatoo.mp4 -vf scale=320:-2 -c:v libx264 -crf 30``).
``SCORES`` are what ``tmk-two-level-score --c1 -1 --c2 -1`` printed for them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.meta_tmk import META_PERIODS, level1, level2, meta_coefficients, meta_hash
from pipeline.store.tmk_files import TMKFileError, read_tmk, write_tmk
from tests.videos import make_video, pattern_frame

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("data") / "meta_tmk"
SHARED = ROOT.parent / "shared" / "videos"
COCKATOO, EXCERPT, STOPMOTION = (GOLDEN / f"{n}.tmk" for n in
                                 ("06_imageio_cockatoo", "06_imageio_cockatoo_excerpt", "17_webrtc_chrome_stopmotion"))
SCORES = {  # tmk-two-level-score: level 1, level 2
    (COCKATOO, EXCERPT): (0.984741, 0.989718),
    (COCKATOO, STOPMOTION): (0.133158, 0.140490),
    (EXCERPT, STOPMOTION): (0.139034, 0.146631),
}


def have_ffmpeg() -> bool:
    from extractors.decode.ffmpeg_frames import FFmpegMissingError, find_ffmpeg

    try:
        find_ffmpeg()
    except FFmpegMissingError:
        return False
    return True


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_meta_files_are_read_and_written_back_byte_for_byte(tmp_path):
    h = read_tmk(COCKATOO)
    assert (h.algorithm, h.fps, h.frame_count, h.dimension) == ("PDQF", 15, 212, 256)
    assert h.periods.tolist() == list(META_PERIODS) and h.cos.shape == h.sin.shape == (4, 32, 256)
    # Meta's coefficient table, not clamped at 1e-7: harmonic 31 is 9.19e-8
    assert np.array_equal(h.coefficients, meta_coefficients()) and h.coefficients[31] == pytest.approx(9.19087e-8)
    out = write_tmk(tmp_path / "copy.tmk", h)
    assert out.read_bytes() == COCKATOO.read_bytes()


def test_two_level_scores_are_meta_s(tmp_path):
    for (a, b), (s1, s2) in SCORES.items():
        ha, hb = read_tmk(a), read_tmk(b)
        assert level1(ha, hb) == pytest.approx(s1, abs=2e-6) and level2(ha, hb) == pytest.approx(s2, abs=2e-6)
        assert level2(hb, ha) == pytest.approx(s2, abs=2e-6)
    out = cli("tmk", "score", str(COCKATOO), str(EXCERPT))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["level1"] == pytest.approx(0.984741, abs=1e-3) and res["level2"] == pytest.approx(0.989718, abs=1e-3)


def test_a_malformed_tmk_file_is_one_line_naming_it(tmp_path):
    data = COCKATOO.read_bytes()
    cases = {"short.tmk": (data[:-4], "truncated"), "long.tmk": (data + b"\0" * 4, "trailing bytes"),
             "header.tmk": (data[:20], "truncated .tmk file"), "magic.tmk": (b"XXXX" + data[4:], "not a TMK"),
             "algo.tmk": (data[:8] + b"ABCD" + data[12:], "unrecognised frame algorithm")}
    for name, (blob, why) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(TMKFileError, match=why):
            read_tmk(tmp_path / name)
    out = cli("tmk", "score", str(tmp_path / "short.tmk"), str(COCKATOO))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().count("\n") == 0 and "short.tmk: truncated" in out.stderr


def test_a_folder_of_received_hashes_is_searched_as_tmk_query_does(tmp_path):
    corpus = tmp_path / "received"
    (corpus / "sub").mkdir(parents=True)
    shutil.copy(COCKATOO, corpus / "sub" / COCKATOO.name)
    shutil.copy(STOPMOTION, corpus / STOPMOTION.name)
    (corpus / "broken.tmk").write_bytes(COCKATOO.read_bytes()[:1000])
    out = cli("tmk", "query", str(EXCERPT), "--corpus", str(corpus))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["hashes"] == 2 and len(res["skipped"]) == 1 and "broken.tmk: truncated" in res["skipped"][0]
    assert "broken.tmk" in out.stderr  # reported, and the rest searched
    (m,) = res["matches"]  # the stop-motion clip is below Meta's level-1 threshold 0.7
    assert m["tmk"].endswith(COCKATOO.name)
    assert (m["level1"], m["level2"]) == pytest.approx(SCORES[(COCKATOO, EXCERPT)], abs=2e-6)
    everything = json.loads(cli("tmk", "query", str(EXCERPT), "--corpus", str(corpus), "--c1", "-1", "--c2",
                                "-1").stdout)
    assert [Path(m["tmk"]).name for m in everything["matches"]] == [COCKATOO.name, STOPMOTION.name]


def test_hashes_of_different_settings_are_not_compared(tmp_path):
    h = read_tmk(COCKATOO)
    other = meta_hash(np.ones((10, 256), np.float32), periods=(100, 200, 300, 400))
    write_tmk(tmp_path / "other.tmk", other)
    out = cli("tmk", "score", str(COCKATOO), str(tmp_path / "other.tmk"))
    assert out.returncode == 2 and "periods differ" in out.stderr
    assert level1(h, h) == pytest.approx(1.0) and level2(h, h) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.skipif(not have_ffmpeg(), reason="no ffmpeg (pip install imageio-ffmpeg)")
def test_hashing_finds_a_rescaled_copy_and_tells_an_unrelated_video(tmp_path):
    src = make_video(tmp_path / "src.mp4", fps=25, n_frames=150, width=160, height=96, seed=1)
    # the whole source at half the size and 30 fps (Meta's periods, 182 s and more, make TMK on a few
    # seconds little more than the mean frame: a partial copy of a short clip is not what it finds)
    copy = make_video(tmp_path / "copy.mp4", fps=30, n_frames=180, width=80, height=48,
                      frames=[np.ascontiguousarray(pattern_frame(i * 25 / 30, 160, 96, seed=1, fps=25)[::2, ::2])
                              for i in range(180)])
    other = make_video(tmp_path / "other.mp4", fps=25, n_frames=150, width=160, height=96, seed=9)
    for v in (src, copy, other):
        out = cli("tmk", "hash", str(v), "-o", str(tmp_path / f"{v.stem}.tmk"))
        assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["frames"] in (90, 91, 92)  # 6 s at 15 fps; ffmpeg's -r adds up to 2 at the end
    score = {n: json.loads(cli("tmk", "score", str(tmp_path / "src.tmk"), str(tmp_path / f"{n}.tmk")).stdout)
             for n in ("copy", "other")}
    assert score["copy"]["level2"] > 0.9 and score["copy"]["level1"] > 0.9
    assert score["other"]["level2"] < score["copy"]["level2"] - 0.2
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"not a video")
    out = cli("tmk", "hash", str(bad), "-o", str(tmp_path / "g.tmk"))
    assert out.returncode != 0 and "garbage.mp4" in out.stderr and not (tmp_path / "g.tmk").exists()


@pytest.mark.skipif(not (SHARED.is_dir() and have_ffmpeg()), reason="../shared/videos or ffmpeg absent")
def test_hashes_of_real_clips_match_meta_s(tmp_path):
    ours = {}
    for golden in (COCKATOO, STOPMOTION):
        out = cli("tmk", "hash", str(SHARED / f"{golden.stem}.mp4"), "-o", str(tmp_path / golden.name))
        assert out.returncode == 0, out.stderr
        ours[golden] = read_tmk(tmp_path / golden.name)
        meta = read_tmk(golden)
        assert ours[golden].frame_count == meta.frame_count
        assert level1(ours[golden], meta) >= 0.999 and level2(ours[golden], meta) >= 0.999
        assert np.abs(ours[golden].cos - meta.cos).max() < 1e-5
    s1, s2 = SCORES[(COCKATOO, STOPMOTION)]
    assert level1(ours[COCKATOO], ours[STOPMOTION]) == pytest.approx(s1, abs=1e-3)
    assert level2(ours[COCKATOO], ours[STOPMOTION]) == pytest.approx(s2, abs=1e-3)


@pytest.mark.skipif(shutil.which("tmk-two-level-score") is None, reason="Meta's tmk-two-level-score not on PATH")
def test_meta_s_tool_reads_our_files(tmp_path):
    h = meta_hash(np.random.default_rng(0).normal(size=(40, 256)).astype(np.float32))
    write_tmk(tmp_path / "a.tmk", h)
    shutil.copy(COCKATOO, tmp_path / "b.tmk")
    out = subprocess.run(["tmk-two-level-score", "--c1", "-1", "--c2", "-1", str(tmp_path / "a.tmk"),
                          str(tmp_path / "b.tmk")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    s1, s2 = (float(v) for v in out.stdout.split()[:2])
    assert s1 == pytest.approx(level1(h, read_tmk(COCKATOO)), abs=1e-5)
    assert s2 == pytest.approx(level2(h, read_tmk(COCKATOO)), abs=1e-5)


def test_a_tmk_dataset_is_searched_by_luigi_as_tmk_query_does(tmp_path):
    """``dataset.kind: tmk``: a folder of received hashes; ``SearchHashes`` reports each pair above
    Meta's thresholds once, with Meta's scores; a bad file is reported and the rest searched; the
    video chain refuses such a dataset with one line saying what to run."""
    import luigi

    from pipeline.config.load import load_config
    from pipeline.config.schema import ConfigError
    from pipeline.store.layout import Layout
    from tasks import BuildIndex, SearchHashes

    folder = tmp_path / "received" / "hashes"
    (folder / "sub").mkdir(parents=True)
    for f in (COCKATOO, EXCERPT):
        shutil.copy(f, folder / f.name)
    shutil.copy(STOPMOTION, folder / "sub" / STOPMOTION.name)
    (folder / "broken.tmk").write_bytes(COCKATOO.read_bytes()[:100])
    conf = tmp_path / "received.yaml"
    conf.write_text(f"dataset:\n  kind: tmk\n  name: received\n  root: {tmp_path / 'received'}\n  videos_dir: hashes\n"
                    f"work_dir: {tmp_path / 'work'}\nreports_dir: {tmp_path / 'reports'}\n")
    task = SearchHashes(dataset=str(conf))
    assert luigi.build([task], local_scheduler=True, log_level="WARNING")
    out = Layout(load_config(str(conf))).hash_search_dir()
    lines = (out / "matches.csv").read_text().splitlines()
    assert lines[0] == "hash_a,hash_b,level1,level2" and len(lines) == 2  # one pair above 0.7 / 0.7
    a, b, s1, s2 = lines[1].split(",")
    assert (a, b) == ("06_imageio_cockatoo", "06_imageio_cockatoo_excerpt")
    assert (float(s1), float(s2)) == pytest.approx(SCORES[(COCKATOO, EXCERPT)], abs=2e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hashes"] == 3 and len(summary["skipped"]) == 1 and "broken.tmk" in summary["skipped"][0]
    assert task.complete()
    # every pair, thresholds off: the corpus and settings name the output, so nothing stale is reused
    loose = SearchHashes(dataset=str(conf), overrides="hashes.level1=-1;hashes.level2=-1")
    assert not loose.complete() and luigi.build([loose], local_scheduler=True, log_level="WARNING")
    rows = Layout(load_config(str(conf), "hashes.level1=-1;hashes.level2=-1")).hash_search_dir() / "matches.csv"
    assert len(rows.read_text().splitlines()) == 1 + 3
    with pytest.raises(ConfigError, match=r"folder of Meta TMK hashes.*SearchHashes"):
        BuildIndex(dataset=str(conf)).requires()

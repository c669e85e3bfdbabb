"""Corpus refresh, publishing, rollback, locking, verify, hostile inputs, kill -9 recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from extractors.decode.pool import decode_messages
from pipeline.config.load import Config, load_config
from pipeline.core.lock import LockHeldError, exclusive_lock
from pipeline.datasets.synthetic import Segment, render, write_video
from pipeline.steps.operations import refresh
from pipeline.steps.operations.verify import verify
from pipeline.store.index_files import read_index
from pipeline.store.layout import Layout
from pipeline.store.publish import current_version, new_version, read_manifest, rollback, versions
from tests.videos import make_video, set_rotation, write_audio_only, write_image

ROOT = Path(__file__).resolve().parents[1]


def published_root(cfg: Config) -> Path:
    return Layout(cfg).published_root


def run_refresh(cfg: Config, **kw) -> refresh.RefreshResult:
    """One refresh as cron runs it: a fresh listing of the corpus."""
    return refresh.run_refresh(Layout(cfg), **kw)


def clip(path: Path, seed: int, seconds: float = 2.0, fps: float = 15.0, size=(96, 64)) -> Path:
    return write_video(path, render([Segment(seed, 0.0, seconds)], fps, *size), fps)


def overrides(tmp: Path, **extra: str) -> str:
    base = {"dataset.root": str(tmp / "data"), "work_dir": str(tmp / "work"), "reports_dir": str(tmp / "reports"),
            "dataset.kind": "folder", "dataset.name": "t", "features.weights": "random", "features.pca": "none",
            "features.batch_size": 16, "features.decode_workers": 0, "shards.size": 4,
            "dataset.max_length_s": 20, "features.precision": "float32"}
    base.update(extra)
    return ";".join(f"{k}={v}" for k, v in base.items())


@pytest.fixture
def corpus(tmp_path):
    vdir = tmp_path / "data" / "videos"
    for i in range(5):
        clip(vdir / f"v{i}.mp4", seed=10 + i)
    return tmp_path


def cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_refresh_detects_added_changed_removed_and_publishes_versions(corpus):
    cfg = load_config("folder", overrides(corpus))
    root = published_root(cfg)
    first = run_refresh(cfg, progress=False)
    assert first.published and len(first.added) == 5 and versions(root)[-1].name == "v000001"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = run_refresh(cfg, progress=False)
    assert not again.published and again.seconds < 5  # nothing new: nothing touched
    assert {p: p.stat().st_mtime_ns for p in files} == stamps and len(versions(root)) == 1

    vdir = corpus / "data" / "videos"
    clip(vdir / "new clip é.mp4", seed=99)  # added (name with a space and non-ASCII)
    clip(vdir / "v1.mp4", seed=77)  # changed content
    (vdir / "v3.mp4").unlink()  # removed
    os.utime(vdir / "v2.mp4", (time.time() + 10, time.time() + 10))  # touched, same content
    res = run_refresh(cfg, progress=False)
    assert res.added == ["new clip é"] and res.changed == ["v1"] and res.removed == ["v3"]
    assert res.index_update == "Flat:updated(-2+2)"
    cur = current_version(root)
    assert cur.name == "v000002"
    man = read_manifest(cur)
    idx = read_index(cur)
    assert sorted(man["videos"]) == sorted(idx.video_ids) == ["new clip é", "v0", "v1", "v2", "v4"]
    assert idx.index.ntotal == 5
    problems, _ = verify(str(cfg.work_dir))
    assert problems == []
    cache = cfg.work_dir / "fingerprints.json"
    stamp = cache.stat().st_mtime_ns
    assert not run_refresh(cfg, progress=False).published and cache.stat().st_mtime_ns == stamp
    # the changed video now matches its new content, not the old one
    _, names = idx.search(np.asarray(_mean_frame(cfg, man["videos"]["v1"]))[None], 1)
    assert names[0] == ["v1"]


@pytest.mark.slow
def test_refresh_layers_new_videos_beside_the_unchanged_base_then_merges_them(corpus):
    """Within ``index.delta_max`` a refresh keeps the published base file as it is (hard-linked: not
    rewritten, not re-hashed) and adds a delta and removed ids; past it the layers are merged."""
    cfg = load_config("folder", overrides(corpus, **{"index.delta_max": 0.5}))
    root = published_root(cfg)
    first = run_refresh(cfg, progress=False, keep=1)
    assert first.index_update == "Flat:rebuilt(5)"
    vdir = corpus / "data" / "videos"
    clip(vdir / "added.mp4", seed=50)
    (vdir / "v3.mp4").unlink()
    res = run_refresh(cfg, progress=False, keep=1)
    assert res.index_update == "Flat:layered(+1 -1)"
    cur = second = current_version(root)
    assert (cur / "index.faiss").samefile(first.version / "index.faiss")
    sums = json.loads((cur / "checksums.json").read_text())
    assert sums["index.faiss"] == json.loads((first.version / "checksums.json").read_text())["index.faiss"]
    man = read_manifest(cur)
    idx = read_index(cur)
    assert idx.layered and sorted(idx.live()[0]) == sorted(man["videos"]) == ["added", "v0", "v1", "v2", "v4"]
    assert verify(str(cfg.work_dir))[0] == []
    queries = np.stack([_mean_frame(cfg, man["videos"][v]) for v in ("added", "v2")])
    _, names = idx.search(queries, 5)
    assert [row[0] for row in names] == ["added", "v2"] and all("v3" not in row and len(row) == 5 for row in names)

    clip(vdir / "v1.mp4", seed=78)  # changed: its base entry is removed, the new content added
    clip(vdir / "later.mp4", seed=51)
    res = run_refresh(cfg, progress=False, keep=1)  # delta 3 + removed 2 > 0.5 x 5: merged by id
    assert res.index_update == "Flat:updated(-1+2)"
    cur = current_version(root)
    assert not first.version.exists()  # pruned (keep=1): its base file lives on in the version linking it
    assert read_index(second).layered
    assert not (cur / "index.faiss").samefile(second / "index.faiss")
    man = read_manifest(cur)
    idx = read_index(cur)
    assert not idx.layered and sorted(idx.video_ids) == sorted(man["videos"]) == \
        ["added", "later", "v0", "v1", "v2", "v4"]
    assert verify(str(cfg.work_dir))[0] == []
    _, names = idx.search(np.stack([_mean_frame(cfg, man["videos"][v]) for v in ("v1", "added")]), 1)
    assert names == [["v1"], ["added"]]


def _mean_frame(cfg, entry):
    import h5py

    f, row = entry["descriptors"][cfg.get("index.model")]
    with h5py.File(f, "r") as h:
        return h["mean_frames"][row]


@pytest.mark.slow
def test_rollback_and_failed_publish_leave_current_consistent(corpus):
    cfg = load_config("folder", overrides(corpus))
    root = published_root(cfg)
    run_refresh(cfg, progress=False)
    clip(corpus / "data" / "videos" / "v9.mp4", seed=9)
    run_refresh(cfg, progress=False)
    assert current_version(root).name == "v000002"
    out = cli("rollback", "--dataset", "folder", "--overrides", overrides(corpus))
    assert out.returncode == 0 and "v000001" in out.stdout
    assert current_version(root).name == "v000001" and "v9" not in read_manifest(current_version(root))["videos"]
    assert rollback(root, "v000002").name == "v000002"
    flip_byte(root / "v000001" / "index.faiss", 100)  # a version whose files fail their checksums
    refused = cli("rollback", "--dataset", "folder", "--overrides", overrides(corpus))
    assert refused.returncode == 2 and "fail their checksums" in refused.stderr and "--force" in refused.stderr
    assert current_version(root).name == "v000002"
    forced = cli("rollback", "--dataset", "folder", "--overrides", overrides(corpus), "--force")
    assert forced.returncode == 0 and current_version(root).name == "v000001"
    assert rollback(root, "v000002").name == "v000002"
    with pytest.raises(RuntimeError, match="crash"), new_version(root) as stage:
        (stage / "partial").write_text("x")
        raise RuntimeError("crash while publishing")
    assert current_version(root).name == "v000002" and [p.name for p in versions(root)] == ["v000001", "v000002"]
    assert not list(root.glob(".v*"))


@pytest.mark.slow
def test_second_refresh_exits_at_once_naming_the_lock_holder(corpus):
    cfg = load_config("folder", overrides(corpus))
    with exclusive_lock(cfg.work_dir / "refresh.lock"):
        with pytest.raises(LockHeldError, match=f"pid {os.getpid()}"), exclusive_lock(cfg.work_dir / "refresh.lock"):
            pass
        t0 = time.perf_counter()
        out = cli("refresh", "--dataset", "folder", "--overrides", overrides(corpus), "--quiet")
        assert time.perf_counter() - t0 < 60
    assert out.returncode == 75
    assert f"pid {os.getpid()}" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_decode_time_limit_and_deleted_file(tmp_path):
    good = clip(tmp_path / "a.mp4", seed=1, seconds=3)
    settings = {"image_area": 12000, "fps": 15.0, "batch_size": 8, "decode_threads": 1,
                "max_pixels": 1 << 26, "decode_workers": 0, "queue_chunks": 4, "video_time_limit_s": 1e-4}
    msgs = list(decode_messages([(0, str(good)), (1, str(tmp_path / "gone.mp4"))], settings))
    errors = {m[1]: m for m in msgs if m[0] == "error"}
    assert "time limit" in errors[0][3]
    assert errors[1][2] in ("read", "decode") and "not found" in errors[1][3]


def _hostile_corpus(vdir: Path) -> dict[str, str]:
    """Bad files (name -> expected cause) beside good ones."""
    vdir.mkdir(parents=True, exist_ok=True)
    bad = {}
    (vdir / "zero.mp4").write_bytes(b"")
    bad["zero"] = "empty file"
    good = clip(vdir / "tmp_good.mp4", seed=3, seconds=3).read_bytes()
    (vdir / "tmp_good.mp4").unlink()
    (vdir / "truncated.mp4").write_bytes(good[: len(good) // 3])
    bad["truncated"] = "cannot read the container"
    (vdir / "random.mp4").write_bytes(np.random.default_rng(0).bytes(30_000))
    bad["random"] = "cannot read the container"
    write_image(vdir / "image.mp4", 32, 32)
    bad["image"] = "an image, not a video"
    write_audio_only(vdir / "audio only.mp4")
    bad["audio only"] = "no video stream"
    write_video(vdir / "huge.mp4", render([Segment(5, 0, 0.2)], 15, 640, 480), 15)
    bad["huge"] = "exceeds the limit"
    # good but odd: one frame, variable frame rate, rotated, corrupt packets in the middle
    write_video(vdir / "one frame.mp4", render([Segment(6, 0, 1 / 15)], 15, 96, 64), 15)
    make_video(vdir / "vfr.mp4", times=np.cumsum(np.r_[0, np.random.default_rng(1).uniform(0.02, 0.1, 40)]),
               width=96, height=64)
    rot = make_video(vdir / "rotated.mp4", fps=25, n_frames=40, width=96, height=64)
    set_rotation(rot, 90)
    corrupt = make_video(vdir / "corrupt middle.mp4", fps=25, n_frames=80, width=96, height=64, codec="mpeg4")
    data = bytearray(corrupt.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 400] = np.random.default_rng(2).bytes(400)
    corrupt.write_bytes(bytes(data))
    for i in range(2):
        clip(vdir / f"ordinary {i}.mp4", seed=40 + i)
    # corpus entries that are not readable regular files: named by the entry, never by a target
    (vdir / "loop.mp4").symlink_to(vdir / "loop.mp4")
    bad["loop"] = "symbolic link loop"
    (vdir / "dangling.mp4").symlink_to(vdir / "no such target.mp4")
    bad["dangling"] = "dangling symbolic link"
    (vdir / "devzero.mp4").symlink_to("/dev/zero")
    bad["devzero"] = "not a regular file: a character device (through a symbolic link)"
    os.mkfifo(vdir / "fifo.mp4")
    bad["fifo"] = "not a regular file: a FIFO"
    (vdir / 'odd "name", with\nnewline.mp4').write_bytes(b"\x00" * 100)
    bad['odd "name", with\nnewline'] = "cannot read the container"
    return bad


def failure_rows(csv_file: Path) -> list[dict]:
    import csv

    with csv_file.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_hostile_corpus_reports_each_bad_file_and_indexes_the_rest(tmp_path):
    bad = _hostile_corpus(tmp_path / "data" / "videos")
    ov = overrides(tmp_path, **{"features.max_pixels": 320 * 240, "features.decode_workers": 1})
    out = cli("refresh", "--dataset", "folder", "--overrides", ov, "--quiet")
    assert out.returncode == 3, out.stderr[-3000:]
    assert f"{len(bad)} file(s) failed" in out.stderr
    cfg = load_config("folder", ov)
    cur = current_version(published_root(cfg))
    rows = failure_rows(cur / "failures.csv")  # quoted CSV: names with quotes, commas, newlines survive
    assert len(rows) == len(bad)
    vdir = tmp_path / "data" / "videos"
    for name, cause in bad.items():
        row = next(r for r in rows if r["file"] == str(vdir / f"{name}.mp4"))
        assert cause in row["cause"], row
    indexed = set(read_manifest(cur)["videos"])
    assert indexed == {"one frame", "vfr", "rotated", "corrupt middle", "ordinary 0", "ordinary 1"}
    # the broken entries are quarantined: the next run decodes nothing, publishes nothing, exits 0
    again = cli("refresh", "--dataset", "folder", "--overrides", ov, "--quiet")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "up to date" in again.stdout and f"{len(bad)} quarantined" in again.stdout
    assert current_version(published_root(cfg)) == cur
    listed = cli("verify", "folder", "--overrides", ov)
    assert sum(line.startswith("NOTE quarantined:") for line in listed.stdout.splitlines()) == len(bad)
    # a quarantined file that changes is retried (and indexed when it now decodes); a removed one is forgotten
    (vdir / "zero.mp4").write_bytes(clip(tmp_path / "fixed.mp4", seed=77).read_bytes())
    (vdir / "loop.mp4").unlink()
    fixed = cli("refresh", "--dataset", "folder", "--overrides", ov, "--quiet")
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert f"{len(bad) - 2} quarantined" in fixed.stdout
    assert "zero" in read_manifest(current_version(published_root(cfg)))["videos"]


@pytest.mark.slow
def test_a_decoder_killed_once_does_not_keep_a_good_video_out(corpus, tmp_path):
    """The OOM killer takes one decoder once: that video fails with a transient cause, the summary names
    it, and the next refresh tries it again and publishes it; a permanently broken file stays
    quarantined, named with its cause by verify, which exits 3 (an operator must act)."""
    from extractors.runtime.failpoints import ENV, ONCE_DIR_ENV

    ov = overrides(corpus, **{"features.decode_workers": 1})
    once = tmp_path / "once"
    once.mkdir()
    first = subprocess.run([sys.executable, "-m", "pipeline", "refresh", "--dataset", "folder", "--overrides", ov,
                            "--quiet"], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PYTHONPATH": str(ROOT), ENV: "decode_worker.send=die-once@2",
                                ONCE_DIR_ENV: str(once)})
    assert first.returncode == 3, first.stderr[-3000:]  # one file failed this run
    killed = [ln for ln in first.stdout.splitlines() if ln.startswith("NOTE quarantined:")]
    assert len(killed) == 1 and "decoder process crashed" in killed[0] and "transient, failed 1 of 3" in killed[0]
    cfg = load_config("folder", ov)
    assert len(read_manifest(current_version(published_root(cfg)))["videos"]) == 4
    (corpus / "data" / "videos" / "junk.mp4").write_bytes(b"not a video" * 100)
    second = cli("refresh", "--dataset", "folder", "--overrides", ov, "--quiet")
    assert second.returncode == 3  # the junk failed; the killed video came back
    assert sorted(read_manifest(current_version(published_root(cfg)))["videos"]) == [f"v{i}" for i in range(5)]
    notes = [ln for ln in second.stdout.splitlines() if ln.startswith("NOTE quarantined:")]
    assert len(notes) == 1 and "junk.mp4" in notes[0] and "permanent" in notes[0]
    third = cli("refresh", "--dataset", "folder", "--overrides", ov, "--quiet")
    assert third.returncode == 0 and "up to date" in third.stdout and "junk.mp4" in third.stdout
    checked = cli("verify", "folder", "--overrides", ov)
    assert checked.returncode == 3, checked.stdout[-2000:]
    assert "1 corpus file(s) no refresh will retry" in checked.stdout and "junk.mp4" in checked.stdout


@pytest.mark.slow
def test_verify_names_what_is_wrong(corpus):
    cfg = load_config("folder", overrides(corpus))
    run_refresh(cfg, progress=False)
    cur = current_version(published_root(cfg))
    man = json.loads((cur / "manifest.json").read_text())
    feat = Path(man["videos"]["v0"]["features"])
    data = feat.read_bytes()
    feat.write_bytes(data[: len(data) // 2])  # truncated artifact
    (feat.parent / ".x.h5.tmp-999999-abcdef").write_bytes(b"partial")  # left by a dead writer
    problems, checked = verify(str(cfg.work_dir))
    assert checked > 0
    assert any(str(feat) in p and "HDF5" in p for p in problems)
    assert any("half-written temporary" in p for p in problems)
    out = cli("verify", "folder", "--overrides", overrides(corpus))
    assert out.returncode == 1 and "PROBLEM" in out.stdout


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_a_bit_flipped_index_is_caught_by_verify_and_query_and_repaired_by_the_next_refresh(corpus):
    ov = overrides(corpus)
    cfg = load_config("folder", ov)
    run_refresh(cfg, progress=False)
    cur = current_version(published_root(cfg))
    index_file = cur / "index.faiss"
    flip_byte(index_file, index_file.stat().st_size - 7)  # inside the stored vectors / id map
    problems, _ = verify(str(cfg.work_dir))
    assert any(str(index_file) in p and ("checksum" in p) for p in problems), problems
    assert len([p for p in problems if "index.faiss" in p]) == 1, problems  # once, not per path to it
    q = cli("query", str(corpus / "data" / "videos" / "v1.mp4"), "--dataset", "folder", "--overrides", ov)
    assert q.returncode == 2 and str(index_file) in q.stderr and len(q.stderr.strip().splitlines()) == 1, q.stderr
    # nothing changed in the corpus, but the damaged version is not built on: a repaired one is published
    res = run_refresh(cfg, progress=False)
    assert res.published and res.index_update.endswith(f"rebuilt({len(read_manifest(res.version)['videos'])})")
    from pipeline.store.index_files import read_index
    from pipeline.store.publish import check_version

    assert check_version(res.version) == [] and read_index(res.version).index.ntotal == 5
    q = cli("query", str(corpus / "data" / "videos" / "v1.mp4"), "--dataset", "folder", "--overrides", ov)
    assert q.returncode == 0, q.stderr[-2000:]
    # a damaged manifest is not trusted either: everything is re-listed (features are reused)
    flip_byte(res.version / "manifest.json", 40)
    again = run_refresh(cfg, progress=False)
    assert again.published and check_version(again.version) == []


@pytest.mark.slow
def test_query_uses_the_published_version(corpus):
    cfg = load_config("folder", overrides(corpus))
    run_refresh(cfg, progress=False)
    video = corpus / "data" / "videos" / "v2.mp4"
    out = cli("query", str(video), "--dataset", "folder", "--overrides", overrides(corpus), "--top", "2", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert doc["matches"][0]["match"] == "v2" and abs(doc["matches"][0]["offset_s"]) < 0.1


@pytest.mark.slow
def test_a_crashed_decoder_fails_only_its_video(tmp_path):
    paths = [clip(tmp_path / f"c{i}.mp4", seed=400 + i, seconds=3) for i in range(3)]
    settings = {"image_area": 12000, "fps": 15.0, "batch_size": 4, "decode_threads": 1, "max_pixels": 1 << 26,
                "decode_workers": 1, "queue_chunks": 2, "video_time_limit_s": 60, "worker_memory_mb": 0}
    outcome, killed = {}, False
    for msg in decode_messages([(i, str(p)) for i, p in enumerate(paths)], settings):
        if msg[0] == "start" and msg[1] == 0 and not killed:
            os.kill(msg[3], signal.SIGKILL)  # the decoder dies in the middle of video 0
            killed = True
        elif msg[0] in ("done", "error"):
            outcome[msg[1]] = msg
    assert outcome[0][0] == "error" and "crashed" in outcome[0][3]
    assert outcome[1][0] == "done" and outcome[2][0] == "done"  # a replacement decoder took over


@pytest.mark.slow
def test_readers_during_refreshes_see_whole_versions(corpus):
    import threading

    cfg = load_config("folder", overrides(corpus))
    root = published_root(cfg)
    run_refresh(cfg, progress=False)
    seen, errors, stop = set(), [], threading.Event()

    def reader():
        while not stop.is_set():
            cur = current_version(root)  # resolve the pointer once, then read only that version
            try:
                man = read_manifest(cur)
                idx = read_index(cur)
                if sorted(man["videos"]) != sorted(idx.video_ids):
                    errors.append(f"{cur.name}: manifest and index disagree")
                seen.add(cur.name)
            except Exception as exc:
                if cur is not None and not cur.exists():
                    continue  # pruned after we resolved it (keep=2): gone, never mixed
                errors.append(f"{cur.name if cur else None}: {exc}")

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(3):
            clip(corpus / "data" / "videos" / f"extra{i}.mp4", seed=500 + i)
            run_refresh(cfg, keep=2, progress=False)
    finally:
        stop.set()
        t.join()
    assert errors == [] and len(seen) >= 2


@pytest.mark.slow
def test_batch_pipeline_after_the_corpus_grew(corpus):
    import luigi

    from pipeline.store.features import video_filename
    from tasks import BuildIndex, forget_listings

    ov = overrides(corpus, **{"shards.size": 2})
    assert luigi.build([BuildIndex(dataset="folder", overrides=ov)], local_scheduler=True, log_level="WARNING")
    cfg = load_config("folder", ov)
    old_index = Layout(cfg).index_dir
    old_v0 = Layout(cfg).feature_shard_dir(0) / video_filename("v0")
    assert read_index(old_index).video_ids == ["v0", "v1", "v2", "v3", "v4"]

    clip(corpus / "data" / "videos" / "a first.mp4", seed=123)  # sorts first: every shard shifts
    forget_listings()
    cfg = load_config("folder", ov)
    lay = Layout(cfg)
    assert lay.index_dir != old_index and not BuildIndex(dataset="folder", overrides=ov).complete()
    assert luigi.build([BuildIndex(dataset="folder", overrides=ov)], local_scheduler=True, log_level="WARNING")
    assert sorted(read_index(lay.index_dir).video_ids) == ["a first", "v0", "v1", "v2", "v3", "v4"]
    assert lay.n_shards == 3
    new_v0 = next(lay.feature_shard_dir(s) / video_filename("v0") for s in range(3)
                  if (lay.feature_shard_dir(s) / video_filename("v0")).exists())
    assert new_v0 != old_v0 and new_v0.stat().st_ino == old_v0.stat().st_ino  # adopted, not recomputed


def test_a_half_switched_current_link_is_reported_and_removed(tmp_path):
    """A kill between creating the new ``current`` link and renaming it over the old one leaves a
    temporary link: ``verify`` reports it and the next publish removes it."""
    import subprocess as sp

    from pipeline.store.publish import prune, switch_current

    root = tmp_path / "published"
    (root / "v000001").mkdir(parents=True)
    switch_current(root, root / "v000001")
    dead = sp.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: the killed publisher's
    left = root / f".current.tmp-{dead.pid}-deadbeef"
    os.symlink("v000001", left)
    problems, _ = verify(str(tmp_path))
    assert any(".current.tmp-" in p and "interrupted run" in p for p in problems), problems
    prune(root, keep=3)
    assert not left.is_symlink() and (root / "current").is_symlink() and (root / "v000001").is_dir()
    assert verify(str(tmp_path))[0] == []
    # the publisher names its link so: an interruption at that point leaves exactly such a link
    from extractors.runtime import failpoints
    from pipeline.core.atomic import TEMP_RE

    (root / "v000002").mkdir()
    os.environ[failpoints.ENV] = "publish.current_switch=raise"
    try:
        failpoints.reset()
        with pytest.raises(failpoints.FailpointError):
            switch_current(root, root / "v000002")
    finally:
        del os.environ[failpoints.ENV]
        failpoints.reset()
    leftovers = list(root.glob(".current.tmp-*"))
    assert len(leftovers) == 1 and TEMP_RE.match(leftovers[0].name)
    assert os.readlink(root / "current") == "v000001"  # the switch did not happen


@pytest.mark.slow
def test_a_version_never_made_current_is_no_rollback_target_and_is_removed(corpus):
    """A publisher killed after its version is complete but before ``current`` switches leaves a
    version that was never current: ``rollback`` refuses it, ``verify`` reports it, the next publish
    removes it."""
    from extractors.runtime import failpoints
    from pipeline.store.publish import PublishError, never_current

    cfg = load_config("folder", overrides(corpus))
    root = published_root(cfg)
    run_refresh(cfg, progress=False)
    clip(corpus / "data" / "videos" / "v7.mp4", seed=7)
    run_refresh(cfg, progress=False)  # v000002, current
    clip(corpus / "data" / "videos" / "v8.mp4", seed=8)
    os.environ[failpoints.ENV] = "publish.current_switch=raise"
    try:
        failpoints.reset()
        with pytest.raises(failpoints.FailpointError):
            run_refresh(cfg, progress=False)  # v000003 complete, never current
    finally:
        del os.environ[failpoints.ENV]
        failpoints.reset()
    assert [v.name for v in never_current(root)] == ["v000003"]
    assert current_version(root).name == "v000002"
    problems, _ = verify(str(cfg.work_dir))
    assert any("v000003" in p and "never made current" in p for p in problems)
    with pytest.raises(PublishError, match="never made current"):
        rollback(root, "v000003")
    from pipeline.store.publish import release

    assert rollback(root).name == "v000001"  # the previous version that was current, not v000003
    release(root)
    rollback(root, "v000002")
    release(root)
    res = run_refresh(cfg, progress=False)  # v8 again: v000004; v000003 pruned
    assert res.version.name == "v000004" and not (root / "v000003").exists()
    assert "v8" in read_manifest(res.version)["videos"]


@pytest.mark.slow
def test_rollback_takes_the_lock_and_holds_current_until_released(corpus):
    ov = overrides(corpus)
    cfg = load_config("folder", ov)
    root = published_root(cfg)
    run_refresh(cfg, progress=False)
    clip(corpus / "data" / "videos" / "v7.mp4", seed=7)
    run_refresh(cfg, progress=False)
    with exclusive_lock(cfg.work_dir / "refresh.lock"):  # a refresh is running
        busy = cli("rollback", "--dataset", "folder", "--overrides", ov)
    assert busy.returncode == 75 and f"pid {os.getpid()}" in busy.stderr
    assert current_version(root).name == "v000002"
    out = cli("rollback", "--dataset", "folder", "--overrides", ov)
    assert out.returncode == 0 and "v000001" in out.stdout and "--release" in out.stdout
    clip(corpus / "data" / "videos" / "v8.mp4", seed=8)
    held = cli("refresh", "--dataset", "folder", "--overrides", ov, "--quiet")
    assert held.returncode == 75 and "held at v000001" in held.stderr and "--release" in held.stderr
    assert current_version(root).name == "v000001"  # the rollback stays in place
    from pipeline.steps.operations.verify import notes

    assert any("held at v000001" in n for n in notes(str(cfg.work_dir)))
    # the command the message prints works as printed (the dataset and overrides the refresh was given)
    import shlex

    printed = held.stderr.split("release it with: ", 1)[1].splitlines()[0]
    words = shlex.split(printed)
    assert words[:4] == ["python", "-m", "pipeline", "rollback"] and words[-1] == "--release"
    assert cli(*words[3:]).returncode == 0
    res = run_refresh(cfg, progress=False)
    assert res.published and current_version(root) == res.version
    # it builds on what is current (v000001 + v7 + v8), not on the version that was rolled back
    assert set(res.added) == {"v7", "v8"}


@pytest.mark.slow
def test_keep_one_still_keeps_the_version_a_reader_may_have_just_resolved(corpus):
    cfg = load_config("folder", overrides(corpus))
    root = published_root(cfg)
    for i in range(3):
        clip(corpus / "data" / "videos" / f"n{i}.mp4", seed=90 + i)
        run_refresh(cfg, keep=1, progress=False)
    # the current version and the one current before it (readers that resolved it a moment ago)
    assert [v.name for v in versions(root)] == ["v000002", "v000003"]
    assert current_version(root).name == "v000003"


@pytest.mark.slow
def test_verify_and_query_name_damaged_feature_files_once_without_a_traceback(corpus):
    import h5py

    ov = overrides(corpus)
    cfg = load_config("folder", ov)
    run_refresh(cfg, progress=False)
    man = read_manifest(current_version(published_root(cfg)))
    feat = {v: Path(e["features"]) for v, e in man["videos"].items()}
    with h5py.File(feat["v0"], "a") as f:
        f.attrs["schema"] = np.array([1, 2, 3])  # a schema attribute of the wrong type
    with h5py.File(feat["v1"], "a") as f:
        x = f["features"][()]
        x[3] = np.nan
        f["features"][...] = x
    with h5py.File(feat["v2"], "a") as f:  # the wrong dimension
        x = f["features"][()]
        del f["features"]
        f.create_dataset("features", data=x[:, :-8])
    data = feat["v3"].read_bytes()
    feat["v3"].write_bytes(data[: len(data) // 3])
    problems, _ = verify(str(cfg.work_dir))
    about = {v: [p for p in problems if p.startswith(str(f) + ":")] for v, f in feat.items()}
    assert about["v0"] and "schema" in about["v0"][0]
    assert about["v1"] and "not finite" in about["v1"][0]
    assert any("dimensional" in p for p in about["v2"])
    assert len(about["v3"]) == 1  # reported once, not by the shard check and again by the file check
    assert not about["v4"]
    q = cli("query", str(corpus / "data" / "videos" / "v2.mp4"), "--dataset", "folder", "--overrides", ov)
    assert q.returncode == 2 and str(feat["v2"]) in q.stderr and "dimensional" in q.stderr, q.stderr
    assert "Traceback" not in q.stderr and sum(ln.startswith("query:") for ln in q.stderr.splitlines()) == 1


@pytest.mark.slow
def test_refused_weights_and_a_pca_of_the_wrong_size_name_their_file(corpus):
    """A checkpoint that would need code execution to load, and a PCA made for other vectors, stop
    the run with one line naming the file (never a traceback, never code executed)."""
    import pickle

    from extractors.frame.pca import PCAWhitening
    from pipeline.store.fitted.pca import save_pca

    class Evil:
        def __reduce__(self):
            return (exec, ("open('PWNED', 'w').write('x')",))

    evil = corpus / "evil.pth"
    evil.write_bytes(pickle.dumps({"conv1.weight": Evil()}))
    out = cli("build", "--dataset", "folder", "--overrides", overrides(corpus, **{"features.weights": str(evil)}),
              "--quiet", cwd=corpus)
    assert out.returncode == 2 and str(evil) in out.stderr and "refused" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and not (corpus / "PWNED").exists()
    bad = save_pca(PCAWhitening(np.zeros((1, 100), np.float32), np.eye(64, 100, dtype=np.float32), {}),
                   corpus / "pca100.h5")
    out = cli("build", "--dataset", "folder", "--overrides", overrides(corpus, **{"features.pca": str(bad)}),
              "--quiet", cwd=corpus)
    assert out.returncode == 2 and str(bad) in out.stderr and "100-dimensional" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_temporaries_a_killed_run_left_in_the_work_root_are_cleaned_by_the_next_one(corpus):
    """A kill during a training-state write leaves ``.<name>.tmp-<pid>-<hex>`` beside the work directory's
    files; the next refresh removes it (its writer is dead), so verify is clean again."""
    cfg = load_config("folder", overrides(corpus))
    work = Layout(cfg).work
    work.mkdir(parents=True, exist_ok=True)
    stale = work / ".selfsup-0123456789.training.pt.tmp-4194999-5eed"  # pid above pid_max: dead
    stale.write_bytes(b"half")
    assert run_refresh(cfg, progress=False).published
    assert not stale.exists()
    assert verify(str(cfg.work_dir))[0] == []


@pytest.mark.slow
def test_a_new_file_that_fails_is_counted_as_failed_not_added(corpus):
    cfg = load_config("folder", overrides(corpus))
    assert run_refresh(cfg, progress=False).published
    clip(corpus / "data" / "videos" / "good.mp4", seed=41)
    (corpus / "data" / "videos" / "broken.mp4").write_bytes(b"\x00" * 1000)
    res = run_refresh(cfg, progress=False)
    assert res.added == ["good"] and [Path(f.path).name for f in res.failures] == ["broken.mp4"]
    assert "1 added" in res.summary() and "1 failed" in res.summary()
    assert read_manifest(res.version)["changes"]["added"] == ["good"]

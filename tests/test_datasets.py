"""Ground-truth readers: formats, names, and clear errors with file:line."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.datasets.readers import (
    AnnotationError,
    align_ground_truth,
    parse_align,
    parse_evve_dat,
    parse_hms,
    parse_vcdb_annotation,
    vcdb_segments,
)


def test_align_names_and_overlaps(tmp_path):
    f = tmp_path / "gt_climbing.align"
    f.write_text("cam/a.mp4 1.0 11.0 100.0\ncam/b.avi.mp4 0.0 5.0 108.0\n\nz.mp4 0 3 500\n")
    items = parse_align(f, "Climbing")
    assert [i.video for i in items] == ["cam/a", "cam/b", "z"]
    pairs, offsets = align_ground_truth(items)
    assert pairs.tolist() == [[0, 1]]
    assert offsets.tolist() == [101.0 - 108.0]
    mad = parse_align("m", "Madonna", text="x/clip.one.mp4 0 1 0\n")
    assert mad[0].video == "clip"


@pytest.mark.parametrize(("text", "msg"), [("a.mp4 1 2\n", ":1: expected"),
                                           ("ok.mp4 0 1 0\nb.mp4 x 2 3\n", ":2: begin/end/global")])
def test_align_errors_name_file_and_line(tmp_path, text, msg):
    f = tmp_path / "bad.align"
    f.write_text(text)
    with pytest.raises(AnnotationError, match=f"bad.align{msg}"):
        parse_align(f)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        parse_align(tmp_path / "nope.align")


def test_vcdb_original_format(tmp_path):
    f = tmp_path / "topic.txt"
    f.write_text("a.mp4,b.flv,00:00:03,00:00:05,00:00:33,00:01:35\nb.flv,c.mp4,0:10,0:20,1:00:00,1:00:10\n")
    pairs = parse_vcdb_annotation(f)
    assert pairs[0].video_a == "topic/a" and pairs[0].video_b == "topic/b"
    assert (pairs[0].a_begin_s, pairs[0].b_end_s) == (3.0, 95.0)
    assert parse_hms("1:00:10") == 3610.0
    segs, gt = vcdb_segments(pairs)
    assert [s.video for s in segs] == ["topic/a", "topic/b", "topic/b", "topic/c"]
    assert gt.tolist() == [[0, 2], [1, 3]]
    f.write_text("a.mp4,b.flv,00:00:03,00:00:05,00:00:33\n")
    with pytest.raises(AnnotationError, match=r"topic\.txt:1: expected 6"):
        parse_vcdb_annotation(f)
    f.write_text("a.mp4,b.flv,00:00:03,00:00:05,00:00:33,xx\n")
    with pytest.raises(AnnotationError, match=r"topic\.txt:1: times"):
        parse_vcdb_annotation(f)


def test_evve_dat(tmp_path):
    f = tmp_path / "e1_wedding.dat"
    f.write_text("q1 1 query\np1 1 database\nn1 -1 database\n")
    entries = parse_evve_dat(f)
    assert [e.key for e in entries] == ["e1_wedding/q1", "e1_wedding/p1", "e1_wedding/n1"]
    assert np.array_equal([e.label for e in entries], [1, 1, -1])
    f.write_text("q1 1 query\np1 2 database\n")
    with pytest.raises(AnnotationError, match=r"e1_wedding\.dat:2: label"):
        parse_evve_dat(f)
    f.write_text("q1 1 train\n")
    with pytest.raises(AnnotationError, match=":1: split"):
        parse_evve_dat(f)


def test_vcdb_self_lines_are_not_copy_pairs(tmp_path):
    """The real VCDB .txt files list each video against itself; like the JSON reader, the .txt
    reader drops those lines, so a query never counts itself as a missed partner."""
    from pipeline.config.load import load_config
    from pipeline.datasets.kinds import load_ground_truth

    (tmp_path / "annotation").mkdir()
    (tmp_path / "annotation" / "t.txt").write_text(
        "a.flv,a.flv,00:00:00,00:00:10,00:00:00,00:00:10\n"
        "a.flv,b.mp4,00:00:01,00:00:05,00:00:11,00:00:15\n"
        "b.mp4,b.mp4,00:00:00,00:00:20,00:00:00,00:00:20\n")
    pairs = parse_vcdb_annotation(tmp_path / "annotation" / "t.txt")
    assert [(p.video_a, p.video_b) for p in pairs] == [("t/a", "t/b")]
    for n in ("a.flv", "b.mp4"):
        (tmp_path / "videos" / "t").mkdir(parents=True, exist_ok=True)
        (tmp_path / "videos" / "t" / n).write_bytes(b"x")
    cfg = load_config("VCDB", f"dataset.root={tmp_path}")
    gt = load_ground_truth(cfg.dataset, ["t/a", "t/b"])
    assert len(gt.pairs) == 1 and gt.pairs[0].video_a != gt.pairs[0].video_b


@pytest.mark.parametrize(("line", "says"), [
    ("a.mp4,b.mp4,99999999999:00:00,99999999999:00:10,00:00:00,00:00:10", "outside"),
    ("a.mp4,b.mp4,-00:00:05,00:00:10,00:00:00,00:00:10", "HH:MM:SS"),
    ("a.mp4,b.mp4,00:00:20,00:00:10,00:00:00,00:00:10", "ends (10 s) before it begins (20 s)"),
])
def test_absurd_vcdb_times_are_refused_naming_file_and_line(line, says):
    from pipeline.datasets.readers import parse_vcdb_annotation

    with pytest.raises(AnnotationError, match=r"t\.txt:2: ") as err:
        parse_vcdb_annotation("t.txt", "a.mp4,b.mp4,00:00:00,00:00:05,00:00:01,00:00:06\n" + line)
    assert says in str(err.value)


@pytest.mark.parametrize(("value", "says"), [("nan", "finite"), ("inf", "finite"), ("-3", "outside"),
                                             ("1e308", "outside")])
def test_absurd_align_times_are_refused_naming_file_and_line(value, says):
    from pipeline.datasets.readers import parse_align

    with pytest.raises(AnnotationError, match=r"x\.align:2: ") as err:
        parse_align("x.align", text=f"v1.mp4 0 10 0\nv2.mp4 {value} 10 5\n")
    assert says in str(err.value)


def test_absurd_boxes_in_converted_vcdb_json_are_refused(tmp_path):
    from pipeline.datasets.readers import parse_vcdb_json

    f = tmp_path / "labels.json"
    f.write_text('{"a-b": [[0, 0, 1e308, 5]]}')
    with pytest.raises(AnnotationError, match=r"labels\.json: a-b: A end"):
        parse_vcdb_json(f)
    f.write_text('{"a-b": [[10, 0, 5, 5]]}')
    with pytest.raises(AnnotationError, match="before it begins"):
        parse_vcdb_json(f)
    f.write_text('{"a-b": [[0, 0, 1%s, 5]]}' % ("0" * 400))  # an integer no float holds
    with pytest.raises(AnnotationError, match=r"labels\.json: a-b: a box value is too large to be a time"):
        parse_vcdb_json(f)
    f.write_text('{"a-b": [[0, 0, true, 5]]}')  # a boolean is not a number of seconds
    with pytest.raises(AnnotationError, match=r"labels\.json: a-b: box \[0, 0, True, 5\] is not"):
        parse_vcdb_json(f)

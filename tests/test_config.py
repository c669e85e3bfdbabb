"""Typed, validated configuration: unknown keys, bad types, removed keys, shipped configs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline.config.load import base_file, load_config
from pipeline.config.schema import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_a_mistyped_key_is_rejected_with_its_name(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'features\.weight' \(known: .*weights"):
        load_config("demo", f"dataset.root={tmp_path};features.weight=random")
    with pytest.raises(ConfigError, match=r"unknown key 'serach'"):
        load_config("demo", f"dataset.root={tmp_path};serach.top_k=3")
    with pytest.raises(ConfigError, match=r"unknown key 'models\.cte\.lambda'"):
        load_config("demo", f"dataset.root={tmp_path};models.cte.lambda=0.2")


def test_a_bad_value_names_the_key_and_the_expected_type(tmp_path):
    with pytest.raises(ConfigError, match=r"'search\.top_k' must be an integer, got 'abc'"):
        load_config("demo", f"dataset.root={tmp_path};search.top_k=abc")
    with pytest.raises(ConfigError, match=r"'features\.dtype' must be one of 'float16', 'float32', got 'int8'"):
        load_config("demo", f"dataset.root={tmp_path};features.dtype=int8")
    with pytest.raises(ConfigError, match=r"'shards\.size' must be >= 1, got 0"):
        load_config("demo", f"dataset.root={tmp_path};shards.size=0")
    with pytest.raises(ConfigError, match=r"'features\.download_weights' must be true or false, got 'maybe'"):
        load_config("demo", f"dataset.root={tmp_path};features.download_weights=maybe")
    with pytest.raises(ConfigError, match=r"'search\.model' is 'tmk_x', which is not a model"):
        load_config("demo", f"dataset.root={tmp_path};search.model=tmk_x")
    with pytest.raises(ConfigError, match=r"'models\.tmk_lamv\.norm' must be one of"):
        load_config("demo", f"dataset.root={tmp_path};models.tmk_lamv.norm=l3")


def test_values_are_typed(tmp_path):
    cfg = load_config("demo", f"dataset.root={tmp_path};segments.frame_threshold=1;features.weights=random")
    assert cfg.segments.frame_threshold == 1.0 and isinstance(cfg.segments.frame_threshold, float)
    assert cfg.features.weights == "random" and cfg.shards.size == 6 and cfg.index.model == "tmk_lamv"
    assert cfg.dataset.max_length_s == 40.0 and cfg.models["cte"].m == 256


def test_replaced_segment_settings_name_their_successor(tmp_path):
    with pytest.raises(ConfigError, match=r"segments\.frame_threshold"):
        load_config("demo", f"dataset.root={tmp_path};search.segment_threshold=0.5")
    with pytest.raises(ConfigError, match=r"segments\.method.*offset.*hv.*tn.*dtw"):
        load_config("demo", f"dataset.root={tmp_path};segments.method=sift")


def test_features_fps_is_gone_with_a_reason(tmp_path):
    with pytest.raises(ConfigError, match=r"features\.fps was removed: every video is sampled at 15 fps"):
        load_config("demo", f"dataset.root={tmp_path};features.fps=25")


def test_every_default_is_in_base_yaml_once():
    """Loading base.yaml alone with a root validates: every typed field has its default there."""
    import yaml

    data = yaml.safe_load(base_file().read_text())
    for section in ("dataset", "features", "shards", "index", "search", "evaluate"):
        assert isinstance(data[section], dict)
    assert "fps" not in data["features"]


def test_dataset_yaml_is_a_config_not_an_artifact_for_verify(tmp_path):
    from pipeline.steps.operations.verify import verify

    yml = tmp_path / "mine.yaml"
    yml.write_text(f"dataset: {{name: mine, kind: folder, root: {tmp_path}}}\nwork_dir: {tmp_path / 'work'}\n")
    problems, checked = verify(str(yml))
    assert checked == 0 and problems == [f"{tmp_path / 'work' / 'mine'}: no work directory for dataset mine "
                                         f"(nothing built yet)"]


@pytest.mark.slow
def test_configs_ship_in_the_wheel(tmp_path):
    """A non-editable install finds the configs: they are package data of the ``configs`` package."""
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                          "-w", str(tmp_path), "-q"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"configs/base.yaml", "configs/demo.yaml", "configs/EVVE.yaml", "configs/luigi.cfg",
            "configs/__init__.py"} <= names
    # and they are found from outside the source tree through the installed package
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import pipeline.config.load as c; p = c.base_file(); print(p); "
            "assert 'site' in str(p), p; print(c.load_config('demo', 'dataset.root=/tmp').source)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "site/configs/demo.yaml" in run.stdout


def test_a_broken_yaml_says_where_on_one_line(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("dataset:\n  kind: folder\n  root: [unclosed\nsearch:\n  top_k: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(bad))
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{bad}:4:7: invalid YAML (while parsing a flow sequence; ")
    assert "expected ',' or ']'" in text


def test_a_type_error_is_not_hidden_by_a_missing_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("VIDEOALIGN_DATA", raising=False)
    mine = tmp_path / "mine.yaml"
    mine.write_text("dataset:\n  kind: folder\nsearch:\n  top_k: many\n")
    with pytest.raises(ConfigError, match=r"'search\.top_k' must be an integer, got 'many'"):
        load_config(str(mine))
    mine.write_text("dataset:\n  kind: folder\n")
    with pytest.raises(ConfigError, match="no data root"):
        load_config(str(mine))


def test_a_configuration_stored_before_new_keys_takes_their_defaults():
    """An index written before ``search.refine_offsets`` / ``agree_directions`` and
    ``calibration.verify_units`` existed still opens (its query runs with the defaults), and a key the
    stored configuration sets keeps its stored value."""
    import json

    from pipeline.config.load import config_from_json, load_config

    data = load_config("demo").data
    for key in ("refine_offsets", "refine_peak_s", "refine_band_s", "agree_directions"):
        del data["search"][key]
    del data["calibration"]["verify_units"]
    data["search"]["keep"] = 7
    cfg = config_from_json(json.dumps(data), "meta.h5 (stored configuration)")
    assert (cfg.search.refine_offsets, cfg.search.agree_directions, cfg.calibration.verify_units) == (
        "wide_peaks", True, 0.0)
    assert cfg.search.keep == 7

"""The dataset registry: what each ``dataset.kind`` reads, searches and how it is evaluated.

One record per kind replaces the switches on ``dataset.kind`` that used to be
spread over the config, corpus, search and evaluation modules.  A new kind is
one more entry in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.config.schema import ConfigError, DatasetConfig
from pipeline.datasets.ground_truth import GroundTruth
from pipeline.datasets.readers import (
    CopyPair,
    _map_ids,
    parse_align,
    parse_evve_dat,
    parse_vcdb_annotation,
    parse_vcdb_json,
)
from pipeline.store.results.segments import vsc_copy_pairs


def _evve_gt(ds: DatasetConfig, ids: list[str]) -> GroundTruth:
    files = sorted((Path(ds.root) / "annotations").glob("*.dat"))
    if not files:
        raise ConfigError(f"{Path(ds.root) / 'annotations'}: no EVVE .dat files")
    gt = GroundTruth("evve")
    for f in files:
        gt.evve += parse_evve_dat(f)
    known = set(ids)
    gt.queries = [e.key for e in gt.evve if e.split == "query" and e.key in known]
    gt.database = [e.key for e in gt.evve if e.split == "database" and e.key in known]
    return gt


def _copy_pairs_gt(ds: DatasetConfig, ids: list[str]) -> GroundTruth:
    root = Path(ds.root)
    ann = root / "annotation"
    txts = sorted(ann.glob("*.txt")) if ann.is_dir() else []
    raw: list[CopyPair] = []
    for f in txts:
        raw += parse_vcdb_annotation(f)
    label = root / "label_file.json"
    if label.is_file():
        pair_file = root / "pair_file.csv"
        raw += parse_vcdb_json(label, pair_file if pair_file.is_file() else None)
    if not txts and not label.is_file():
        raise ConfigError(f"{root}: no annotation/<topic>.txt and no label_file.json")
    return GroundTruth(ds.kind, pairs=_map_ids(raw, ids))


def _vsc_gt(ds: DatasetConfig, ids: list[str]) -> GroundTruth:
    if not ds.gt_file:
        raise ConfigError(f"dataset {ds.name}: dataset.gt_file must name the VSC 2022 ground-truth CSV "
                          f"(query_id,ref_id,query_start,query_end,ref_start,ref_end) for kind vsc")
    return GroundTruth(ds.kind, pairs=_map_ids(vsc_copy_pairs(Path(ds.root) / ds.gt_file), ids))


def _align_gt(ds: DatasetConfig, ids: list[str]) -> GroundTruth:
    if not ds.gt_file:
        raise ConfigError(f"dataset {ds.name}: dataset.gt_file must name the .align file for kind {ds.kind}")
    return GroundTruth(ds.kind, align=parse_align(Path(ds.root) / ds.gt_file,
                                                           kind=ds.kind.capitalize()))


def _no_gt(ds: DatasetConfig, ids: list[str]) -> GroundTruth:
    return GroundTruth(ds.kind)


@dataclass(frozen=True)
class DatasetKind:
    """How one kind of dataset is read, searched and evaluated.

    ``protocol`` names the evaluation (``pipeline.steps.evaluate.PROTOCOLS``);
    ``query_split``: queries and the searched database come from the ground truth
    (EVVE) instead of every video against every other; ``generated``: the corpus is
    produced by the pipeline itself (a task the chain requires).
    """

    name: str
    ground_truth: Callable[[DatasetConfig, list[str]], GroundTruth]
    protocol: str
    query_split: bool = False
    generated: bool = False
    missing_root_hint: str = ""
    hashes: bool = False  # the corpus is Meta TMK hashes (.tmk files), not videos: SearchHashes, not the chain


KINDS: dict[str, DatasetKind] = {k.name: k for k in (
    DatasetKind("evve", _evve_gt, "event_retrieval", query_split=True),
    DatasetKind("vcdb", _copy_pairs_gt, "copy_pairs"),
    DatasetKind("vcsl", _copy_pairs_gt, "copy_pairs"),  # label_file.json (+ pair_file.csv): the VCSL format
    DatasetKind("vsc", _vsc_gt, "copy_pairs"),  # VSC 2022 matching ground truth (dataset.gt_file)
    DatasetKind("demo", _copy_pairs_gt, "copy_pairs", generated=True,
                missing_root_hint=" (generate it: python -m pipeline demo, or any Luigi task with --dataset demo)"),
    DatasetKind("climbing", _align_gt, "alignment"),
    DatasetKind("madonna", _align_gt, "alignment"),
    DatasetKind("align", _align_gt, "alignment"),  # any .align file, e.g. `python -m pipeline generate align`
    DatasetKind("folder", _no_gt, "summary"),
    DatasetKind("tmk", _no_gt, "summary", hashes=True),  # .tmk files under <root>/<videos_dir>
)}


def kind_names() -> list[str]:
    return list(KINDS)


def kind_of(ds: DatasetConfig) -> DatasetKind:
    return KINDS[ds.kind]


def load_ground_truth(ds: DatasetConfig, ids: list[str]) -> GroundTruth:
    """The dataset's ground truth in its own on-disk format, mapped onto corpus ids."""
    return kind_of(ds).ground_truth(ds, ids)


def search_scope(ds: DatasetConfig, ids: list[str]) -> tuple[list[str], set[str] | None]:
    """The queries to run and the database they may match (None: every video)."""
    if not kind_of(ds).query_split:
        return ids, None
    gt = load_ground_truth(ds, ids)
    known = set(ids)
    return [q for q in gt.queries if q in known], set(gt.database)

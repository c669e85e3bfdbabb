"""The task graph, written once: every step of the chain as a :class:`Node`.

A node names its task and parameters, the nodes it requires, the artifact it writes (and the file
written last, whose presence Luigi checks), how its completeness is checked and how it runs.
``python -m pipeline build`` walks :func:`plan`; each Luigi task of ``tasks/`` wraps the node of its
name and parameters (:data:`NODES`): its ``requires`` are the node's, its ``output`` the node's
artifact, and its ``run`` stages in what its inputs say, then runs the node.  So the scheduler's graph
is the data flow, and both entry points write the same bytes.

    GenerateCorpus -> [TrainVocabulary | TrainFrameModel] -> [TrainPCA] -> ExtractFeatures(shard)
        -> [Train(model)] -> ComputeDescriptors(shard, model) -> BuildIndex -> [SampleFrames(shard)]
        -> [CalibrateThresholds] -> SearchShard(model, shard) -> Search(model) -> Evaluate(model)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.datasets.kinds import kind_of
from pipeline.datasets.synthetic import DEMO_MARKER, ensure_demo_corpus
from pipeline.steps.describe import describe_shard, sample_shard_frames
from pipeline.steps.evaluate import evaluate
from pipeline.steps.features.extract import extract_shard
from pipeline.steps.features.extractor import pca_needed
from pipeline.steps.features.fitting import train_frame_model, train_pca, train_vocabulary
from pipeline.steps.index import build_index
from pipeline.steps.search import merge_search, needs_full_frames, search_shard
from pipeline.steps.thresholds import calibrate_thresholds
from pipeline.steps.training.train import train_model
from pipeline.store import completeness
from pipeline.store.features import PACK_NAME
from pipeline.store.layout import Layout

STAGES = ("features", "descriptors", "index", "search", "evaluate")


@dataclass(frozen=True)
class Requirement:
    """A node this one needs, by task name and parameters (what a Luigi task is cloned with)."""

    task: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Node:
    """One step of the chain.

    ``output`` is the artifact (a file or a directory) the step writes, ``marker`` the file written last
    (``output`` itself for a single file); ``complete()`` opens and validates the artifact; ``run`` takes
    ``show_progress`` and returns what the step returns.
    """

    task: str
    params: dict[str, object]
    requires: list[Requirement]
    output: Path
    marker: Path
    complete: Callable[[], bool]
    run: Callable[[bool], object]
    writes: Path | None = None  # what the step writes when it is not all of ``output`` (a set: its marker)

    @property
    def name(self) -> str:
        """``ExtractFeatures(shard=3)``: how runs are recorded."""
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.task}({args})" if args else self.task


def corpus_ready(layout: Layout) -> list[Requirement]:
    """The node that produces the corpus, for kinds the pipeline generates (demo)."""
    return [Requirement("GenerateCorpus")] if kind_of(layout.cfg.dataset).generated else []


def corpus_fits(layout: Layout) -> list[Requirement]:
    """What the extractor fits on the corpus before any frame feature: vocabulary or network."""
    return ([Requirement("TrainVocabulary")] if layout.needs_vocabulary else []) + \
        ([Requirement("TrainFrameModel")] if layout.trains_frame_model else [])


def member_set(layout: Layout, task: str, params: dict[str, object], members: list[Node], directory: Path) -> Node:
    """A node standing for a set of shard nodes (every feature shard, every descriptor shard of a model...):
    the tasks that read all of them require the set, not each shard, so the scheduler's graph grows with
    the shards plus the readers, not their product.  Its output is the directory (what a remote run
    stages in); its marker lists the members; it is complete when every member is."""
    marker = layout.set_marker(directory)
    paths = [m.output for m in members]
    return Node(task, params, [Requirement(m.task, m.params) for m in members], directory, marker,
                lambda: completeness.member_list_complete(marker, paths, lambda: all(m.complete() for m in members)),
                lambda _progress: completeness.write_member_list(marker, paths), writes=marker)


def feature_set(layout: Layout) -> Node:
    return member_set(layout, "FeatureSet", {}, [extract_features(layout, s) for s in range(layout.n_shards)],
                      layout.features_dir)


def descriptor_set(layout: Layout, model: str) -> Node:
    return member_set(layout, "DescriptorSet", {"model": model},
                      [compute_descriptors(layout, s, model) for s in range(layout.n_shards)],
                      layout.descriptors_dir(model))


def frame_set(layout: Layout) -> Node:
    return member_set(layout, "FrameSet", {}, [sample_frames_node(layout, s) for s in range(layout.n_shards)],
                      layout.segment_frames_dir())


def generate_corpus(layout: Layout) -> Node:
    marker = layout.cfg.root / DEMO_MARKER
    return Node("GenerateCorpus", {}, [], marker, marker, marker.is_file,
                lambda _progress: ensure_demo_corpus(layout.cfg.root))


def train_vocabulary_node(layout: Layout) -> Node:
    p = layout.vocab_path
    return Node("TrainVocabulary", {}, corpus_ready(layout), p, p, lambda: completeness.vocabulary_complete(p),
                lambda progress: train_vocabulary(layout, progress))


def train_frame_model_node(layout: Layout) -> Node:
    p = layout.frame_model_path
    return Node("TrainFrameModel", {}, corpus_ready(layout), p, p, lambda: completeness.frame_model_complete(p),
                lambda progress: train_frame_model(layout, progress))


def train_pca_node(layout: Layout) -> Node:
    p = layout.pca_path
    return Node("TrainPCA", {}, corpus_fits(layout) or corpus_ready(layout), p, p,
                lambda: completeness.pca_complete(p), lambda progress: train_pca(layout, progress))


def extract_features(layout: Layout, shard: int) -> Node:
    d = layout.feature_shard_dir(shard)
    fitted = ([Requirement("TrainPCA")] if pca_needed(layout) else []) + corpus_fits(layout)
    return Node("ExtractFeatures", {"shard": shard}, fitted or corpus_ready(layout), d, d / PACK_NAME,
                lambda: completeness.feature_shard_complete(d), lambda progress: extract_shard(layout, shard, progress))


def train(layout: Layout, model: str) -> Node:
    p = layout.trained_path(model)
    return Node("Train", {"model": model}, [Requirement("FeatureSet")], p, p,
                lambda: completeness.trained_model_complete(layout, model),
                lambda progress: train_model(layout, model, progress))


def compute_descriptors(layout: Layout, shard: int, model: str) -> Node:
    p = layout.descriptor_path(model, shard)
    trained = [Requirement("Train", {"model": model})] if layout.trains(model) else []
    return Node("ComputeDescriptors", {"shard": shard, "model": model},
                [Requirement("ExtractFeatures", {"shard": shard}), *trained], p, p,
                lambda: completeness.descriptors_complete(p),
                lambda progress: describe_shard(layout, layout.feature_shard_dir(shard), model, progress))


def every_descriptor(layout: Layout, models: Sequence[str]) -> list[Requirement]:
    """Every descriptor shard of ``models``, through one set node per model."""
    return [Requirement("DescriptorSet", {"model": m}) for m in models]


def build_index_node(layout: Layout) -> Node:
    d = layout.index_dir
    return Node("BuildIndex", {}, every_descriptor(layout, list(layout.cfg.models)), d, d / "meta.h5",
                lambda: completeness.index_complete(d), lambda _progress: build_index(layout))


def sample_frames_node(layout: Layout, shard: int) -> Node:
    """One feature shard's frames at ``segments.fps``, what the copy-segment stage reads."""
    p = layout.segment_frames_path(shard)
    return Node("SampleFrames", {"shard": shard}, [Requirement("ExtractFeatures", {"shard": shard})], p, p,
                lambda: completeness.segment_frames_complete(p), lambda _progress: sample_shard_frames(layout, shard))


def calibrate_thresholds_node(layout: Layout) -> Node:
    """The copy decision's thresholds for this corpus (``calibration``), from the frames the copy-segment
    stage compares."""
    p = layout.thresholds_path
    return Node("CalibrateThresholds", {}, [Requirement("FeatureSet")], p, p,
                lambda: completeness.thresholds_complete(p), lambda _progress: calibrate_thresholds(layout))


def search_shard_node(layout: Layout, model: str, shard: int) -> Node:
    """One slice of the queries (``shards.queries``); reads the index, the descriptors of ``model`` and
    of the index's model, the segment-frame store and, where the search needs them, the 15-fps features."""
    p = layout.search_shard_path(model, shard)
    frames = [Requirement("FrameSet")] if layout.uses_segment_frames else []
    full = [Requirement("FeatureSet")] if needs_full_frames(layout) else []
    calibrated = [Requirement("CalibrateThresholds")] if layout.calibrates_thresholds else []
    reads = every_descriptor(layout, sorted({model, layout.cfg.index.model})) + frames + full + calibrated
    return Node("SearchShard", {"model": model, "shard": shard}, [Requirement("BuildIndex"), *reads], p, p,
                lambda: completeness.search_shard_complete(p),
                lambda progress: search_shard(layout, model, shard, progress))


def search_node(layout: Layout, model: str) -> Node:
    """The search shards of ``model`` merged in query order (reading the features of the pairs whose two
    directions disagree, under ``search.agree_directions``: the shards require the feature set then)."""
    d = layout.search_dir(model)
    shards = [Requirement("SearchShard", {"model": model, "shard": s}) for s in range(len(layout.query_shards))]
    return Node("Search", {"model": model}, shards, d, d / "results.h5",
                lambda: completeness.search_complete(d), lambda _progress: merge_search(layout, model))


def evaluate_node(layout: Layout, model: str) -> Node:
    """Reads the search results, the descriptors of ``model`` and every feature shard."""
    d, s = layout.report_dir(model), layout.search_dir(model)
    reads = [*every_descriptor(layout, [model]), Requirement("FeatureSet")]
    return Node("Evaluate", {"model": model}, [Requirement("Search", {"model": model}), *reads], d,
                d / "report.json", lambda: completeness.reports_complete(d, s),
                lambda _progress: evaluate(layout, model))


NODES: dict[str, Callable[..., Node]] = {
    "GenerateCorpus": generate_corpus, "TrainVocabulary": train_vocabulary_node,
    "TrainFrameModel": train_frame_model_node, "TrainPCA": train_pca_node, "ExtractFeatures": extract_features,
    "Train": train, "ComputeDescriptors": compute_descriptors, "BuildIndex": build_index_node,
    "FeatureSet": feature_set, "DescriptorSet": descriptor_set, "FrameSet": frame_set,
    "SampleFrames": sample_frames_node, "CalibrateThresholds": calibrate_thresholds_node,
    "SearchShard": search_shard_node, "Search": search_node,
    "Evaluate": evaluate_node,
}
"""Task name -> the node of that task for a layout and the task's parameters."""


def plan(layout: Layout, until: str = "index", models: Sequence[str] | None = None) -> Iterator[Node]:
    """The chain up to ``until`` in an order that runs every node after what it requires.

    A generator: a generated corpus exists only once its node has run, so the nodes that list it are
    made after the caller has run the ones before (``build`` runs each node as it comes).
    """
    if until not in STAGES:
        raise ValueError(f"until must be one of {', '.join(STAGES)}, got {until!r}")
    cfg = layout.cfg
    stop = STAGES.index(until)
    if kind_of(cfg.dataset).generated:
        yield generate_corpus(layout)
    if layout.needs_vocabulary:
        yield train_vocabulary_node(layout)
    if layout.trains_frame_model:
        yield train_frame_model_node(layout)
    if pca_needed(layout):
        yield train_pca_node(layout)
    for s in range(layout.n_shards):
        yield extract_features(layout, s)
    yield feature_set(layout)
    if stop >= 1:
        for m in layout.trained_models:
            yield train(layout, m)
        for s in range(layout.n_shards):
            for m in cfg.models:
                yield compute_descriptors(layout, s, m)
        for m in cfg.models:
            yield descriptor_set(layout, m)
    if stop >= 2:
        yield build_index_node(layout)
    chosen = list(models) if models else (list(cfg.evaluate.models) if stop >= 4 else [cfg.search.model])
    if stop >= 3:
        if layout.uses_segment_frames:
            for s in range(layout.n_shards):
                yield sample_frames_node(layout, s)
            yield frame_set(layout)
        if layout.calibrates_thresholds:
            yield calibrate_thresholds_node(layout)
        for m in chosen:
            for s in range(len(layout.query_shards)):
                yield search_shard_node(layout, m, s)
            yield search_node(layout, m)
    if stop >= 4:
        for m in chosen:
            yield evaluate_node(layout, m)

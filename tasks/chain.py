"""The chain's tasks: each wraps the node of its name and parameters in the plan
(:mod:`pipeline.steps.plan`), so the task graph is written once.

A task's ``requires`` are its node's requirements, its ``output`` is the node's artifact (checked by
the node's completeness), and its ``run`` stages in what its inputs say, runs the node and stages the
artifact out (its last file last).  Tasks work on shards of videos (``shards.size`` per task), never
one task per video: the central scheduler's cost grows quickly with the number of tasks.
"""

from __future__ import annotations

import luigi
from luigi.task import flatten

from pipeline.config.schema import ConfigError
from pipeline.steps.plan import NODES, Node, Requirement, corpus_ready
from tasks.base import DatasetTask, forget_listings


def tasks_for(task: DatasetTask, requirements: list[Requirement]) -> list[luigi.Task]:
    """The Luigi tasks standing for the plan's requirements, with ``task``'s dataset and overrides."""
    return [task.clone(TASKS[r.task], **r.params) for r in requirements]


class ChainTask(DatasetTask):
    """A task of the chain: the plan's node(s) for its name and parameters."""

    def node_params(self) -> dict[str, object]:
        return {name: getattr(self, name) for name, _ in self.get_params() if name not in ("dataset", "overrides")}

    def nodes(self) -> list[Node]:
        return [NODES[self.task_family](self.layout, **self.node_params())]

    def before_listing(self) -> list[luigi.Task]:
        """What the task requires while a generated corpus does not exist yet (its nodes need the listing)."""
        return tasks_for(self, corpus_ready(self.layout))

    def listed_nodes(self) -> list[Node] | None:
        """The task's nodes; ``None`` while a generated corpus they need to list does not exist yet."""
        try:
            return self.nodes()
        except ConfigError:
            if self.corpus_listed():
                raise
            return None

    def requires(self):
        self.preflight()
        nodes = self.listed_nodes()
        if nodes is None:
            return self.before_listing()
        return self.node_requirements(nodes)

    def node_requirements(self, nodes: list[Node]) -> list[luigi.Task]:
        """The tasks ``nodes`` require, each once."""
        wanted = {(r.task, tuple(sorted(r.params.items()))): r for n in nodes for r in n.requires}
        return tasks_for(self, list(wanted.values()))

    def output(self):
        nodes = self.listed_nodes()
        if nodes is None:
            return [self.store.target(self.layout.work / ".corpus-not-generated-yet")]
        return [self.store.target(n.marker, lambda _p, n=n: n.complete(), local=n.output) for n in nodes]

    def run(self):
        self.stage_in(flatten(self.input()))
        self.run_nodes()

    def stage_in(self, targets: list[luigi.Target]) -> None:
        """Fetch the local artifacts ``targets`` stand for (a generated corpus is local, never staged)."""
        for t in targets:
            if hasattr(t, "local"):
                self.store.fetch(t.local)

    def run_nodes(self) -> None:
        """Run each node whose output is not there yet; stage its artifact out, the last file last."""
        for node, target in zip(self.nodes(), flatten(self.output()), strict=True):
            if target.exists():
                continue
            self.store.fetch(node.output)  # work finished by an interrupted attempt is kept
            node.run(True)
            written = node.writes or node.output
            self.store.publish(written, last=node.marker if node.marker != written else None)
            self.record(**node.params)


class GenerateCorpus(ChainTask):
    """A corpus the pipeline makes itself (``dataset.kind: demo``: planted copies + ground truth)."""

    def requires(self):
        return []

    def output(self):
        return luigi.LocalTarget(str(self.nodes()[0].marker))  # the corpus is local, never staged

    def run(self):
        self.nodes()[0].run(True)
        forget_listings()
        self.record()


class TrainVocabulary(ChainTask):
    """MultiVLAD vocabularies fitted on the corpus's frames (only for ``features.extractor: mvlad``)."""


class TrainFrameModel(ChainTask):
    """The ``selfsup`` extractor's network, trained self-supervised on the corpus's frames
    (only for ``features.extractor: selfsup``); resumes an interrupted training."""


class TrainPCA(ChainTask):
    """PCA-whitening trained on the corpus (only when ``features.pca: trained``), after the vocabulary
    or network the extractor needs."""


class ExtractFeatures(ChainTask):
    """Frame features of one shard; output: the shard directory (its ``_pack.h5`` is written last)."""

    shard = luigi.IntParameter()


class FeatureSet(ChainTask):
    """Every feature shard of the corpus: what the tasks reading all of them require (one edge each
    instead of one per shard)."""


class DescriptorSet(ChainTask):
    """Every descriptor shard of ``model``."""

    model = luigi.Parameter()


class FrameSet(ChainTask):
    """Every shard of the segment-frame store."""


class Train(ChainTask):
    """A model trained on the dataset's ground truth (``models.<model>``: a learned LAMV kernel, a TCA; any
    type with a trained file in ``pipeline.store.model_types``), over every shard's frame features, held-out
    fold excluded; resumable."""

    model = luigi.Parameter()


class ComputeDescriptors(ChainTask):
    """Temporal descriptors of one shard for one model (after its training, for a trained one)."""

    shard = luigi.IntParameter()
    model = luigi.Parameter()


class ListedLater(ChainTask):
    """A task whose requirements come from the corpus listing (every shard, every query slice).

    Static dependencies must not change between scheduling and run time (Luigi checks them again before
    ``run``): a generated corpus does not exist yet at scheduling, so for it these requirements are
    dynamic dependencies (``run`` yields them) and the static ones are :meth:`before_listing`'s; any
    other corpus's requirements are static.
    """

    def requires(self):
        self.preflight()
        if self.generated:
            return self.before_listing()
        return super().requires()

    @property
    def generated(self) -> bool:
        return bool(corpus_ready(self.layout))

    def listed_tasks(self) -> list[luigi.Task]:
        """The requirements the listing gives (the shards, or the query slices)."""
        return self.node_requirements(self.nodes())

    def complete(self):
        if not self.outputs_valid() or not self.corpus_listed():
            return False
        deps = flatten(self.requires())
        if self.generated:  # the listed requirements are not static ones: check them too
            deps += self.listed_tasks()
        return all(r.complete() for r in deps)

    def run(self):
        deps = self.listed_tasks() if self.generated else []
        if deps:
            yield deps  # a generated corpus exists only now: what it lists becomes dynamic dependencies
        if not self.outputs_valid():
            self.stage_in(flatten([t.output() for t in deps] + [self.input()]))
            self.run_nodes()


class BuildIndex(ListedLater):
    """FAISS index over every shard (descriptors of all configured models are computed too)."""


class SampleFrames(ChainTask):
    """One feature shard's frames at ``segments.fps`` (``stores.segment_frames``): what the copy-segment
    stage reads, a seventh of the 15-fps features or less."""

    shard = luigi.IntParameter()


class CalibrateThresholds(ChainTask):
    """The copy decision's thresholds for this corpus and these features (``calibration``), from how
    frames meet the frames of other videos; no label is read."""


class SearchShard(ChainTask):
    """One slice of the queries (``shards.queries`` of them) searched with ``model``: an all-vs-all search
    spreads over the workers like extraction."""

    model = luigi.Parameter()
    shard = luigi.IntParameter()

    def before_listing(self) -> list[luigi.Task]:
        return [self.clone(BuildIndex)]


class Search(ListedLater):
    """Candidates from the index, re-ranked by offset scoring with ``model``: the search shards, merged."""

    model = luigi.Parameter(default="", description="model name (default: search.model)")

    @property
    def model_name(self) -> str:
        return self.model or self.cfg.search.model

    def node_params(self) -> dict[str, object]:
        return {"model": self.model_name}

    def before_listing(self) -> list[luigi.Task]:
        return [self.clone(BuildIndex)]


class Evaluate(ListedLater):
    """Metrics and reports for each model of ``evaluate.models`` (or just ``model``)."""

    model = luigi.Parameter(default="", description="one model (default: all of evaluate.models)")

    @property
    def models(self) -> list[str]:
        return [self.model] if self.model else list(self.cfg.evaluate.models)

    def nodes(self) -> list[Node]:
        return [NODES["Evaluate"](self.layout, model=m) for m in self.models]

    def before_listing(self) -> list[luigi.Task]:
        return [self.clone(Search, model=m) for m in self.models]


TASKS: dict[str, type[ChainTask]] = {t.__name__: t for t in (
    GenerateCorpus, TrainVocabulary, TrainFrameModel, TrainPCA, ExtractFeatures, FeatureSet, Train,
    ComputeDescriptors, DescriptorSet, FrameSet, BuildIndex, SampleFrames, CalibrateThresholds, SearchShard, Search,
    Evaluate)}
"""The Luigi task of each node of the plan (the same names)."""

"""Luigi tasks: they only wire ``requires`` / ``input`` / ``output`` to the plan's nodes
(:mod:`pipeline.steps.plan`), the same steps ``python -m pipeline build`` walks.

    luigi --module pipeline BuildIndex --dataset EVVE --local-scheduler
    luigi --module pipeline Evaluate --dataset demo --overrides "search.top_k=20"

Every path comes from ``pipeline.store.layout``.  A task is complete only when each of its outputs passes
its node's completeness check *and* everything it requires is complete, so re-running after damage or
deletion redoes exactly the missing outputs and what is made from them.  Importing this package applies
the pipeline's Luigi settings (``configs/luigi.cfg``) and its one-line failure log: it is the entry layer,
imported by ``luigi --module pipeline``, ``python -m pipeline luigi`` and the demo, never by the library.
"""

from __future__ import annotations

from tasks.base import DatasetTask, forget_listings, shared_listing
from tasks.chain import (
    BuildIndex,
    CalibrateThresholds,
    ChainTask,
    ComputeDescriptors,
    DescriptorSet,
    Evaluate,
    ExtractFeatures,
    FeatureSet,
    FrameSet,
    GenerateCorpus,
    SampleFrames,
    Search,
    SearchShard,
    Train,
    TrainFrameModel,
    TrainPCA,
    TrainVocabulary,
)
from tasks.hashes import SearchHashes
from tasks.luigi_settings import apply_defaults, log_failures, route_package_logs
from tasks.refresh import RefreshCorpus

apply_defaults()
log_failures()
route_package_logs()

__all__ = [
    "BuildIndex",
    "CalibrateThresholds",
    "ChainTask",
    "ComputeDescriptors",
    "DatasetTask",
    "DescriptorSet",
    "Evaluate",
    "ExtractFeatures",
    "FeatureSet",
    "FrameSet",
    "GenerateCorpus",
    "RefreshCorpus",
    "SampleFrames",
    "Search",
    "SearchHashes",
    "SearchShard",
    "Train",
    "TrainFrameModel",
    "TrainPCA",
    "TrainVocabulary",
    "forget_listings",
    "shared_listing",
]

"""Temporal descriptors of a feature shard, and the configured temporal models.
"""

from __future__ import annotations

from pathlib import Path

from extractors.runtime import failpoints
from pipeline.store.descriptors import (
    DescriptorStore,
    build_model,
    compute_shard_descriptors,
)
from pipeline.store.layout import Layout
from pipeline.store.segment_frames import write_segment_frames


def describe_shard(layout: Layout, feature_shard: Path, model: str, show_progress: bool = False) -> Path:
    """Temporal descriptors of ``model`` for every video of one feature shard."""
    out = layout.descriptor_file(model, feature_shard)
    failpoints.hit("describe.before_write")
    return compute_shard_descriptors(feature_shard, out, model, layout.model_spec(model),
                                     layout.cfg.dataset.max_length_s, layout.cfg.stores.descriptors, show_progress)


def sample_shard_frames(layout: Layout, shard: int) -> Path:
    """The segment-frame store's file of one feature shard (``stores.segment_frames``)."""
    return write_segment_frames(layout.feature_shard_dir(shard), layout.segment_frames_path(shard),
                                layout.segment_step, layout.cfg.stores.segment_frames)


def descriptor_store(layout: Layout, model: str) -> DescriptorStore:
    return DescriptorStore([layout.descriptor_path(model, s) for s in range(layout.n_shards)])


def configured_model(layout: Layout, model_name: str):
    """The temporal model ``models.<model_name>`` of the config (a learned kernel read from its file)."""
    return build_model(layout.model_spec(model_name), layout.cfg.dataset.max_length_s)

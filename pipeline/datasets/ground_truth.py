"""What a dataset knows about its videos (spec section 6): the :class:`GroundTruth` record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.datasets.readers import AlignItem, CopyPair, EvveEntry, align_ground_truth


@dataclass
class GroundTruth:
    """What a dataset knows about its videos.

    * ``queries``: video ids used as queries (all videos when empty);
    * ``database``: ids searched (all videos when empty);
    * ``pairs``: partial copies (VCDB-like; ids are corpus video ids);
    * ``evve``: EVVE entries (event, label, split);
    * ``align``: Climbing/Madonna items.
    """

    kind: str
    queries: list[str] = field(default_factory=list)
    database: list[str] = field(default_factory=list)
    pairs: list[CopyPair] = field(default_factory=list)
    evve: list[EvveEntry] = field(default_factory=list)
    align: list[AlignItem] = field(default_factory=list)

    def align_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        return align_ground_truth(self.align)

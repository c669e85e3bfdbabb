"""``dataset.kind: tmk``: a corpus of Meta TMK+PDQF hashes (``.tmk`` files received from elsewhere, or
made by ``python -m pipeline tmk hash``), searched as Meta's ``tmk-query`` does.

    luigi --module pipeline SearchHashes --dataset received --local-scheduler
"""

from __future__ import annotations

import json

import luigi

from pipeline.config.schema import ConfigError
from pipeline.datasets.kinds import kind_of
from pipeline.steps.formats.meta_tmk import search_hash_corpus
from tasks.base import DatasetTask


class SearchHashes(DatasetTask):
    """Every pair of the folder's hashes above ``hashes.level1`` / ``hashes.level2``: ``matches.csv``."""

    def requires(self):
        if not kind_of(self.cfg.dataset).hashes:
            raise ConfigError(f"dataset {self.cfg.name}: SearchHashes searches a folder of .tmk files "
                              f"(dataset.kind: tmk), not a {self.cfg.dataset.kind} dataset")
        return []

    def output(self):
        d = self.layout.hash_search_dir()
        return {"matches": luigi.LocalTarget(str(d / "matches.csv")),
                "summary": luigi.LocalTarget(str(d / "summary.json"))}

    def outputs_valid(self) -> bool:
        try:
            return "pairs" in json.loads(open(self.output()["summary"].path, encoding="utf-8").read())
        except (OSError, ValueError):
            return False

    def run(self):
        search_hash_corpus(self.layout)

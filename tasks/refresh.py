"""``RefreshCorpus``: the cron refresh as a task (the same step as ``python -m pipeline refresh``)."""

from __future__ import annotations

import luigi

from pipeline.core.errors import StepError
from pipeline.steps.operations.refresh import is_up_to_date, locked_refresh
from pipeline.steps.plan import corpus_ready
from tasks.base import DatasetTask
from tasks.chain import tasks_for


class RefreshCorpus(DatasetTask):
    """Incremental refresh: process new/changed videos, drop removed ones, publish a new index version.

    The same step as ``python -m pipeline refresh`` (PCA training included when the
    settings need one).  Complete when the published manifest matches the files on
    disk (a listing and ``stat`` only), so a cron run with nothing new returns in seconds.
    """

    keep = luigi.IntParameter(default=3, description="published versions kept for rollback")

    def requires(self):
        if not self.complete():
            self.preflight()
        return tasks_for(self, corpus_ready(self.layout))

    def output(self):
        return []

    def complete(self):
        return self.corpus_listed() and is_up_to_date(self.layout)

    def run(self):
        if self.store.remote:
            raise StepError("RefreshCorpus publishes versions behind a symbolic link and needs a POSIX "
                               "work_dir (storage: null); object storage is supported by the batch tasks")
        locked_refresh(self.layout, keep=self.keep)
        self.record()

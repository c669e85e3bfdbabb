"""One storage abstraction for every Luigi task input and output (entry-point layer:
it speaks Luigi targets; the steps below it only see local paths).

``storage: null`` (default): artifacts live in ``work_dir`` / ``reports_dir`` on
a local or shared POSIX filesystem; Luigi targets are ``LocalTarget`` and
staging is a no-op.

``storage: s3://bucket/prefix``: the same artifacts live in object storage.
``work_dir`` / ``reports_dir`` become local scratch: a task downloads the
artifacts it reads (stage-in), works on local files (HDF5 and FAISS need
POSIX files), uploads what it wrote (stage-out) and Luigi checks completion
with ``luigi.contrib.s3.S3Target`` on the uploaded object.  The completion
marker of every task is its last file, uploaded last.

Object keys mirror the local layout: ``<prefix>/work/<dataset>/...`` and
``<prefix>/reports/<dataset>/...``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import luigi

from extractors.runtime import failpoints
from pipeline.config.load import Config

log = logging.getLogger(__name__)


class CheckedTarget(luigi.LocalTarget):
    """A local file or directory that exists only when its validity check passes."""

    def __init__(self, path: Path, valid: Callable[[Path], bool] | None = None) -> None:
        super().__init__(str(path))
        self.valid = valid

    def exists(self) -> bool:
        return self.valid(Path(self.path)) if self.valid is not None else super().exists()


class Storage:
    """Maps local artifact paths to Luigi targets and stages them in and out."""

    def __init__(self, cfg: Config) -> None:
        self.work = Path(cfg["work_dir"])
        self.reports = Path(cfg["reports_dir"])
        self.uri = (cfg.get("storage") or "").rstrip("/")

    @property
    def remote(self) -> bool:
        return bool(self.uri)

    def key(self, path: Path) -> str:
        """Object key of a local artifact path."""
        path = Path(path)
        for base, name in ((self.work, "work"), (self.reports, "reports")):
            try:
                return f"{self.uri}/{name}/{path.relative_to(base).as_posix()}"
            except ValueError:
                continue
        raise ValueError(f"{path} is neither under work_dir {self.work} nor reports_dir {self.reports}")

    def target(self, path: Path, valid: Callable[[Path], bool] | None = None,
               local: Path | None = None) -> luigi.Target:
        """The Luigi target standing for ``path`` (what ``Task.output`` returns; for an artifact that is a
        directory, the file written last in it).

        Locally, ``valid`` (a node's completeness check) decides whether the output exists: a damaged or
        half-deleted output counts as missing and is redone.  Every target's ``local`` attribute is the
        local artifact the steps work on (``local``, else ``path``): what a dependent stages in.
        """
        if not self.remote:
            target: luigi.Target = CheckedTarget(path, valid)
        else:
            from luigi.contrib.s3 import S3Target

            target = S3Target(self.key(path))
        target.local = Path(local or path)  # type: ignore[attr-defined]  # where the steps read and write it
        return target

    def _client(self):
        from luigi.contrib.s3 import S3Client

        return S3Client()

    def fetch(self, path: Path) -> Path:
        """Stage in a file, or every file below a directory; returns the local path."""
        path = Path(path)
        if not self.remote:
            return path
        client, key = self._client(), self.key(path)
        if client.exists(key) and not client.isdir(key):
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                client.get(key, str(path))
            return path
        for k in client.list(key, return_key=False):
            local = path / k
            if not local.exists():
                local.parent.mkdir(parents=True, exist_ok=True)
                client.get(f"{key}/{k}", str(local))
        return path

    def publish(self, path: Path, last: Path | None = None) -> None:
        """Stage out a file or a directory tree; ``last`` (the completion marker) goes last."""
        path = Path(path)
        if not self.remote:
            return
        client = self._client()
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files = [f for f in files if not f.name.startswith(".")]  # no temporaries
        if last is not None:
            files = [f for f in files if f != last] + [last]
        for f in files:
            failpoints.hit("storage.upload")
            client.put(str(f), self.key(f))
        log.debug("uploaded %d file(s) under %s", len(files), self.key(path))


def storage_for(cfg: Config) -> Storage:
    return Storage(cfg)


def describe_backends() -> str:
    return ("local or shared POSIX filesystem (LocalTarget); Amazon S3 and S3-compatible stores "
            "(luigi.contrib.s3.S3Target, credentials from the usual AWS environment/config)")


__all__ = ["CheckedTarget", "Storage", "describe_backends", "storage_for"]

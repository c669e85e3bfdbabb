"""FAISS is imported lazily and reports its build."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_importing_the_packages_does_not_import_faiss_or_luigi():
    code = ("import sys, pipeline, pipeline.metrics.copies, pipeline.datasets.readers, extractors.temporal.tmk, "
            "extractors.temporal.cte, index.query_expansion, index.faiss_backend; "
            "print('faiss' in sys.modules, 'luigi' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_faiss_build_is_described():
    pytest.importorskip("faiss")
    from index.faiss_backend import faiss_build

    desc = faiss_build()
    assert desc.startswith("faiss ") and "build" in desc

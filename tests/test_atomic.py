"""Atomic writes (pipeline/core/atomic.py): a full disk is named, nothing half-written is left."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from pipeline.core.atomic import DiskFullError, atomic_write_text
from pipeline.core.hdf5 import atomic_h5


@pytest.mark.parametrize("how", ["fsync", "hdf5"])
def test_a_full_disk_names_the_file_and_the_free_space_and_leaves_nothing(tmp_path, monkeypatch, how):
    target = tmp_path / "shard-00003" / ("_pack.h5" if how == "hdf5" else "manifest.json")
    if how == "fsync":  # the device fills up while the file is flushed
        def full(_fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(DiskFullError) as info:
            atomic_write_text(target, "{}")
    else:  # HDF5 reports it in its own words
        with pytest.raises(DiskFullError) as info, atomic_h5(target) as f:
            f.create_dataset("x", data=np.zeros(4))
            raise OSError("Can't write data (file write failed: ..., errno = 28, error message = 'No space left')")
    text = str(info.value)
    assert text.startswith(f"{target}: no space left on the device holding {target.parent} (")
    assert "MB free" in text and "\n" not in text
    assert isinstance(info.value, OSError)  # callers that handle OSError still do
    assert list(target.parent.iterdir()) == []  # no temporary, no partial file

"""A full disk (a small tmpfs): clear error, exit 1, the log stays readable and resumes."""

from __future__ import annotations

import pytest

from .conftest import SEED
from .disk import can_mount_tmpfs, disk_full_trial
from .runs import SMALL

pytestmark = pytest.mark.skipif(not can_mount_tmpfs(), reason="needs root and tmpfs mounts")


@pytest.mark.parametrize(("size_kib", "prefill_kib"), [(1280, 0), (512, 480)])
def test_disk_full(tmp_path, small_ref, size_kib: int, prefill_kib: int) -> None:
    t = disk_full_trial(tmp_path, SEED, SMALL, size_kib, prefill_kib)
    assert t.clear_error, t.stderr
    assert t.intact and t.cli_check == 0 and t.info_code == 0
    assert t.resumed.code == 0 and t.resumed.digest == small_ref.digest

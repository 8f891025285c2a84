"""A full disk (a small tmpfs): clear error, exit 1, the log stays readable and resumes."""

from __future__ import annotations

import pytest

from .conftest import SEED
from .disk import can_mount_tmpfs, disk_full_trial
from .runs import SMALL

pytestmark = pytest.mark.skipif(not can_mount_tmpfs(), reason="needs root and tmpfs mounts")


@pytest.mark.parametrize(("share", "prefill_kib"), [(0.5, 0), (None, 480)])
def test_disk_full(tmp_path, small_ref, share: float | None, prefill_kib: int) -> None:
    # Half the space the finished run takes (or 512 KiB, 480 of them already used).
    size_kib = 512 if share is None else max(512, int(small_ref.disk_kib * share))
    assert share is None or size_kib < small_ref.disk_kib
    t = disk_full_trial(tmp_path, SEED, SMALL, size_kib, prefill_kib)
    assert t.clear_error, t.stderr
    assert t.intact and t.cli_check == 0 and t.info_code == 0
    assert t.resumed.code == 0 and t.resumed.digest == small_ref.digest

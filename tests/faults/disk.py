"""A full disk: ``scaleenv run`` on a small tmpfs (root) fails clearly and keeps its log."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs

from .logcheck import inspect
from .runs import Finished, cli_check, run_argv, run_to_end, scaleenv


def can_mount_tmpfs() -> bool:
    """True when this process may mount a tmpfs (root in a permissive container)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    with tempfile.TemporaryDirectory() as d:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True)
        return ok


@contextlib.contextmanager
def small_disk(size_kib: int) -> Iterator[Path]:
    """A mounted tmpfs of ``size_kib`` KiB, unmounted on exit."""
    d = Path(tempfile.mkdtemp(prefix="scaleenv-fullfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(d)], check=True,
                   capture_output=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


@attrs.frozen
class DiskFullTrial:
    """A run on a disk too small for it, then resumed elsewhere."""

    code: int
    stderr: str
    committed: int
    intact: bool
    cli_check: int
    info_code: int
    resumed: Finished

    @property
    def clear_error(self) -> bool:
        """Exit 1, one line naming the log's path and the full disk, no traceback."""
        lines = [x for x in self.stderr.splitlines() if x.strip()]
        return (self.code == 1 and len(lines) == 1 and "Traceback" not in self.stderr
                and "disk full" in self.stderr)

    def survived(self, ref: Finished) -> bool:
        return (self.clear_error and self.intact and self.cli_check == 0 and self.info_code == 0
                and self.resumed.code == 0 and self.resumed.digest == ref.digest)


def disk_full_trial(workdir: Path, seed: int, config: tuple[str, ...], size_kib: int,
                    prefill_kib: int = 0) -> DiskFullTrial:
    """Run on a ``size_kib`` tmpfs (``prefill_kib`` of it already used), then resume with space."""
    with small_disk(size_kib) as disk:
        if prefill_kib:
            (disk / "filler").write_bytes(b"\0" * (prefill_kib << 10))
        log = disk / "run.lmdb"
        p = subprocess.run(run_argv(log, seed, config), capture_output=True, text=True, timeout=600)
        copy = workdir / f"full-{size_kib}-{prefill_kib}.lmdb"
        shutil.rmtree(copy, ignore_errors=True)
        if (log / "data.mdb").exists():
            shape = inspect(log)
            check = cli_check(log)
            info = subprocess.run(scaleenv("log", "info", "--log", str(log), "--json"), capture_output=True).returncode
            shutil.copytree(log, copy, ignore=shutil.ignore_patterns("writer.lock"))
            committed, intact = shape.last_seq, shape.intact
        else:
            committed, intact, check, info = 0, True, 0, 0
    resumed = run_to_end(copy, seed, config)
    shutil.rmtree(copy, ignore_errors=True)
    return DiskFullTrial(code=p.returncode, stderr=p.stderr, committed=committed, intact=intact,
                         cli_check=check, info_code=info, resumed=resumed)

"""Output files written whole or not at all (`export --out` and `scaleenv.export_log`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced_when_done(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s own directory to write to; when the block ends
    without an error, move it onto ``path`` with one ``os.replace`` (after an fsync), so a
    reader sees the old file or the whole new one, never part of it. On an error or
    cancellation (a full disk, Ctrl-C) the temporary file is removed and ``path`` is left as
    it was. A symlink is followed (its target is replaced; the link stays); a ``path`` that
    is there and is no regular file (``/dev/stdout``, a FIFO) is written in place, as it
    cannot be replaced. The new file gets the old one's permission bits, or the umask's."""
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        yield target
        return
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

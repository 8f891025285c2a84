"""LMDB's own header of a ``data.mdb``, read with ``pread`` before LMDB maps the file.

LMDB maps the whole file and trusts it: a page past the end of a truncated file is a
SIGBUS that kills the process with no message. :func:`check_data_file` reads the two
meta pages (the layout of ``MDB_meta`` in LMDB's ``mdb.c``: after the page header,
``mm_magic`` u32, ``mm_version`` u32, ``mm_address`` u64, ``mm_mapsize`` u64, the free
and main ``MDB_db`` of 48 bytes each, whose first ``md_pad`` is the page size,
``mm_last_pg`` u64, ``mm_txnid`` u64; integers in host order), takes the committed one
(the larger txnid, as ``mdb_env_pick_meta`` does) and refuses a file that does not start
with LMDB's magic (:class:`NotALog`) or is shorter than the pages that meta says are in
use (:class:`LogDamaged`), unless every missing page is one LMDB's free-page db lists
(``mdb.c`` on ``mm_last_pg``: "the file may be shorter if the freeDB lists the final
pages"; the free db is then walked with ``pread`` too). Only LMDB 0.9's page layout (the
logs' pinned engine) is walked; a short LMDB 1.0 file is refused.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

import lmdb

from .errors import LogDamaged, LogError, NotALog

MDB_MAGIC = 0xBEEFC0DE
PAGE_HEADERS = (16, 24)
"""Bytes of ``MDB_page`` header before ``MDB_meta``: LMDB 0.9 (data format 1), LMDB 1.0."""

DAMAGE = (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError, lmdb.BadChecksumError)
"""What LMDB raises when a page it reads is not what the tree says it should be."""

_META = struct.Struct("=IIQQ48s48sQQ")  # mm_magic .. mm_txnid: 136 bytes
_PAD = struct.Struct("=I")  # md_pad, the first field of MDB_db: the page size in the free db's
_U16 = struct.Struct("=H")
_U64 = struct.Struct("=Q")
MIN_PAGE_SIZE = 256
MAX_PAGE_SIZE = 1 << 16


class Meta(NamedTuple):
    """The fields of one meta page this check needs."""

    magic: int
    version: int
    page_size: int
    last_pg: int
    txnid: int
    free_root: int
    """The root page of LMDB's free-page db (``mm_dbs[0].md_root``; P_INVALID if empty)."""
    header: int
    """Bytes of page header before the meta (16: LMDB 0.9, 24: LMDB 1.0)."""


def _meta_at(fd: int, offset: int, header: int) -> Meta | None:
    raw = os.pread(fd, _META.size, offset + header)
    if len(raw) < _META.size:
        return None
    magic, version, _address, _mapsize, free_db, _main_db, last_pg, txnid = _META.unpack(raw)
    return Meta(magic, version, _PAD.unpack_from(free_db)[0], last_pg, txnid,
                _U64.unpack_from(free_db, 40)[0], header)


def read_meta(path: Path) -> tuple[Meta, int] | None:
    """The committed meta of the LMDB data file ``path`` and the file's size, read with
    ``pread`` (never mapped). ``None`` for an empty file (LMDB initialises it) or one this
    process may not read (LMDB's own open reports that).

    Raises :class:`NotALog` for a file that is not LMDB, :class:`LogDamaged` for an
    LMDB file whose meta pages are cut off or implausible.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None  # unreadable: LMDB's own open reports it
    try:
        first = os.pread(fd, 64, 0)
        if not first:
            return None
        header = next((h for h in PAGE_HEADERS
                       if len(first) >= h + 4 and _PAD.unpack_from(first, h)[0] == MDB_MAGIC), None)
        if header is None:
            raise NotALog(str(path.parent), f"{path.name} is not an LMDB file (no LMDB magic in its first page)")
        m0 = _meta_at(fd, 0, header)
        if m0 is None:
            raise LogDamaged(str(path.parent), f"{path.name} is cut off inside its first meta page "
                                               f"({os.fstat(fd).st_size} bytes)")
        psize = m0.page_size
        if psize < MIN_PAGE_SIZE or psize > MAX_PAGE_SIZE or psize & (psize - 1):
            raise LogDamaged(str(path.parent), f"{path.name}'s meta page 0 gives an implausible page size {psize}")
        m1 = _meta_at(fd, psize, header)
        size = os.fstat(fd).st_size  # after reading the metas: a writer only ever grows the file
    finally:
        os.close(fd)
    if m1 is None:
        raise LogDamaged(str(path.parent), f"{path.name} is {size} bytes, shorter than its two meta pages "
                                           f"({2 * psize} bytes of {psize}-byte pages): the file was truncated")
    if m1.magic != MDB_MAGIC:
        raise LogDamaged(str(path.parent), f"{path.name}'s meta page 1 has no LMDB magic")
    return (m1 if m1.txnid > m0.txnid else m0), size


def check_data_file(path: Path) -> None:
    """Refuse ``path`` (a ``data.mdb``) if LMDB would fault on it when mapped and read.

    Raises :class:`NotALog` (not an LMDB file) or :class:`LogDamaged` (truncated: shorter
    than ``(mm_last_pg + 1) * page size`` of its committed meta page, unless every page
    missing at the end is one LMDB's free-page db lists: ``mdb.c`` allows that tail).
    """
    found = read_meta(path)
    if found is None:
        return
    meta, size = found
    need = (meta.last_pg + 1) * meta.page_size
    if size < need and not _missing_pages_are_free(path, meta, size):
        raise LogDamaged(str(path.parent), f"{path.name} is {size} bytes but its LMDB header (txn {meta.txnid}) "
                                           f"says {need} bytes are in use ({meta.last_pg + 1} pages of "
                                           f"{meta.page_size}): the file was truncated")


# LMDB 0.9's page layout (mdb.c): mp_pgno u64, mp_pad u16, mp_flags u16, then mp_lower and
# mp_upper u16 (an overflow page: mp_pages u32), then mp_ptrs[] u16 (node offsets). A node:
# mn_lo, mn_hi, mn_flags, mn_ksize (u16 each), the key, then the data; in a branch node
# lo | hi << 16 | flags << 32 is the child's page number, in a leaf lo | hi << 16 is the
# data size and F_BIGDATA puts the data on an overflow page whose number is the data.
P_BRANCH, P_LEAF, P_OVERFLOW = 0x01, 0x02, 0x04
F_BIGDATA = 0x01
P_INVALID = (1 << 64) - 1


def _missing_pages_are_free(path: Path, meta: Meta, size: int) -> bool:
    """Whether every page from the end of the file through ``mm_last_pg`` is listed in the
    free-page db (records of a txnid -> an IDL: a count, then that many page numbers),
    read with ``pread`` within the file; anything unreadable or malformed means no."""
    if meta.header != 16:
        return False  # only LMDB 0.9's layout is read here (the logs' pinned engine)
    psize, in_file = meta.page_size, size // meta.page_size
    missing = set(range(in_file, meta.last_pg + 1))
    if meta.free_root == P_INVALID:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        def page(pgno: int, pages: int = 1) -> bytes | None:
            if not 2 <= pgno or pgno + pages > in_file:
                return None
            raw = os.pread(fd, pages * psize, pgno * psize)
            return raw if len(raw) == pages * psize else None

        todo, seen = [meta.free_root], set()
        while todo and missing:
            pgno = todo.pop()
            buf = page(pgno)
            if pgno in seen or buf is None or len(seen) > in_file:
                return False
            seen.add(pgno)
            flags, lower = _U16.unpack_from(buf, 10)[0], _U16.unpack_from(buf, 12)[0]
            if not flags & (P_BRANCH | P_LEAF) or not 16 <= lower <= psize:
                return False
            for i in range((lower - 16) >> 1):
                node = _U16.unpack_from(buf, 16 + 2 * i)[0]
                if node + 8 > psize:
                    return False
                lo, hi, nflags, ksize = struct.unpack_from("=HHHH", buf, node)
                if flags & P_BRANCH:
                    todo.append(lo | hi << 16 | nflags << 32)
                    continue
                dsize, at = lo | hi << 16, node + 8 + ksize
                if nflags & F_BIGDATA:
                    if at + 8 > psize:
                        return False
                    over = _U64.unpack_from(buf, at)[0]
                    head = page(over)
                    if head is None or not _U16.unpack_from(head, 10)[0] & P_OVERFLOW:
                        return False
                    data = page(over, struct.unpack_from("=I", head, 12)[0])
                    if data is None:
                        return False
                    idl = data[16:16 + dsize]
                else:
                    idl = buf[at:at + dsize]
                if len(idl) < 8 or len(idl) % 8:
                    return False
                count = _U64.unpack_from(idl)[0]
                if count * 8 + 8 > len(idl):
                    return False
                missing.difference_update(_U64.unpack_from(idl, 8 * (j + 1))[0] for j in range(count))
    finally:
        os.close(fd)
    return not missing


def from_lmdb_error(path: str | os.PathLike[str], exc: lmdb.Error) -> LogError:
    """The log's own error for an error LMDB raised while reading the log at ``path``:
    :class:`LogDamaged` for damaged pages (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, ...), a plain
    :class:`LogError` naming the log for the rest; the message is LMDB's own."""
    if isinstance(exc, DAMAGE):
        return LogDamaged(str(path), f"LMDB says: {exc}")
    return LogError(f"{path}: LMDB says: {exc}")

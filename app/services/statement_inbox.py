"""The statement inbox: import every file dropped in a folder, then file it away.

Imported files (new or seen before) move to ``processed/``; refused ones to ``failed/``
with the reason in ``<name>.reason.txt`` beside them. A file that another runner moved
first is skipped: the database, not the folder, makes each file count once. A file that
changed while it was read and imported (a copy still going on, or a new file saved under the
same name) stays in the inbox for the next run, which imports it whole: the lines imported
from the part read before count once.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections import Counter
from pathlib import Path

from ..adapters.db import Database
from ..domain.errors import StatementRejected
from .clock import Clock
from .statement_import import MAX_STATEMENT_BYTES, import_statement

log = logging.getLogger(__name__)

PROCESSED = "processed"
FAILED = "failed"
# A file younger than this may still be being copied in; it waits for the next run.
SETTLE_SECONDS = 10.0
_PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".filepart")
# Hidden files (".~lock.x#" of LibreOffice among them) and Excel's "~$x.xlsx" owner files.
_IGNORED_PREFIXES = (".", "~$")


def import_inbox(
    db: Database,
    clock: Clock,
    inbox: Path,
    *,
    actor: str = "inbox",
    settle_seconds: float = SETTLE_SECONDS,
) -> dict[str, int]:
    """Import each settled file of ``inbox``; return counts of what happened."""
    counts: Counter[str] = Counter(imported=0, duplicate=0, failed=0, errors=0, unsettled=0, lines_new=0)
    if not inbox.is_dir():
        return dict(counts)
    processed, failed = inbox / PROCESSED, inbox / FAILED
    processed.mkdir(exist_ok=True)
    failed.mkdir(exist_ok=True)
    for path in _waiting_files(inbox, settle_seconds):
        name = readable_name(path)
        read = None
        try:
            data, read = _read_inbox_file(path)
            result = import_statement(db, clock, data=data, filename=name, actor=actor)
        except FileNotFoundError:
            continue  # another runner took it
        except StatementRejected as exc:
            if read is not None and not _unchanged(path, read):
                _leave_unsettled(counts, name)
                continue
            target = _move(path, failed)
            if target is not None:
                # "x": a link planted under the reason's name is never written through.
                reason = target.with_name(target.name + ".reason.txt")
                with open(reason, "x", encoding="utf-8") as file:
                    file.write(exc.detail + "\n")
                counts["failed"] += 1
                log.warning(
                    "inbox statement refused", extra={"file": name, "detail": exc.detail}
                )
            continue
        except Exception:  # noqa: BLE001 - one file's trouble must not block the others
            counts["errors"] += 1
            log.exception(
                "inbox statement not imported; left for the next run", extra={"file": name}
            )
            continue
        if not _unchanged(path, read):
            _leave_unsettled(counts, name)
            continue
        _move(path, processed)
        counts["imported" if result.created else "duplicate"] += 1
        counts["lines_new"] += result.lines_new
    return dict(counts)


def readable_name(path: Path) -> str:
    """The file's name as text any database and log can take.

    A name the file system holds in another encoding than UTF-8 (GBK, from a Windows share)
    reaches Python with surrogate escapes, which neither PostgreSQL nor a UTF-8 log accepts: each
    byte that is not UTF-8 becomes U+FFFD. The file itself keeps its name.
    """
    return os.fsencode(path.name).decode("utf-8", "replace")


def _read_inbox_file(path: Path) -> tuple[bytes, os.stat_result]:
    """Return the content of ``path`` and its status as read: a regular file in the inbox
    itself, never a link's target.

    Whoever can write to the inbox must not make the service read (and file refusals quoting)
    what lies elsewhere: its secret key, its Alipay key, another statement.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StatementRejected(
                "the file is a symbolic link; only files in the inbox itself are read", line=1
            ) from None
        raise
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise StatementRejected("not a regular file", line=1)
        if info.st_size > MAX_STATEMENT_BYTES:
            raise StatementRejected(
                f"the file is larger than {MAX_STATEMENT_BYTES // (1024 * 1024)} MiB", line=1
            )
        return file.read(MAX_STATEMENT_BYTES + 1), info


def _unchanged(path: Path, read: os.stat_result) -> bool:
    """Tell whether ``path`` is still the file read, as it was read: not replaced, not grown."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return True  # another runner filed it; moving it finds nothing
    return (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) == (
        read.st_dev,
        read.st_ino,
        read.st_size,
        read.st_mtime_ns,
    )


def _leave_unsettled(counts: Counter[str], name: str) -> None:
    counts["unsettled"] += 1
    log.warning("inbox statement changed while it was imported; left for the next run", extra={"file": name})


def _waiting_files(inbox: Path, settle_seconds: float) -> list[Path]:
    # File ages are measured on the file system's clock, not the service's.
    cutoff = time.time() - settle_seconds
    waiting = []
    for path in sorted(inbox.iterdir()):
        if path.name.startswith(_IGNORED_PREFIXES) or path.name.endswith(_PARTIAL_SUFFIXES):
            continue
        try:
            if path.is_file() and path.stat().st_mtime <= cutoff:
                waiting.append(path)
        except FileNotFoundError:
            continue
    return waiting


def _move(path: Path, folder: Path) -> Path | None:
    """Move ``path`` into ``folder`` without overwriting; None if it is gone already."""
    target = folder / path.name
    number = 0
    while os.path.lexists(target) or os.path.lexists(target.with_name(target.name + ".reason.txt")):
        number += 1
        target = folder / f"{path.stem}.{number}{path.suffix}"
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    return target

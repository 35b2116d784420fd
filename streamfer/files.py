"""Files that appear under their names only when whole: one ``.part`` scheme and one atomic
write for every output, cache and record the product writes.

A file being written is hidden beside its target as ``.<stem>.part<suffix>`` (the suffix kept,
so a video's container is still known by its extension): an interrupted run leaves that part
file, never a truncated file under the final name; :func:`is_part` tells our part files (and
any hidden file) from inputs.

A file's name is text where the product writes it (a CSV's ``source``, the batch's record,
a report) by :func:`printable`, whatever bytes the disk holds, and OpenCV, which crashes on a
name that is not UTF-8, is given one it can take (:func:`opencv_name`).

Example:
    >>> part_path(Path("out/cam2/x.mov"))
    PosixPath('out/cam2/.x.part.mov')
    >>> is_part(Path("out/cam2/.x.part.mov")), is_part(Path("out/cam2/x.mov"))
    (True, False)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_UMASK = os.umask(0o022)  # read once, at import (reading it means setting it)
os.umask(_UMASK)


def printable(name: str) -> str:
    """A file's name as text: as it is, or, where its bytes are not UTF-8 (a name given on
    another system, in Latin-1 or Shift-JIS: Python holds those bytes as surrogates, which
    no CSV, record or page can hold), each such byte written as ``\\xe9``, as ``ls -b`` does;
    a control character too (a newline in a name broke the summary's row and the CSV's one
    line a row).

    Example:
        >>> printable("caf\\udce9.mp4"), printable("café.mp4"), printable("a\\nb.mp4")
        ('caf\\\\xe9.mp4', 'café.mp4', 'a\\\\x0ab.mp4')
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        name = os.fsencode(name).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", name)


_CONTROL = re.compile("[\\x00-\\x1f\\x7f]")


def unprintable(text: str) -> str:
    """The name :func:`printable` made ``text`` from (a CSV's ``source``: the file it names).

    Example:
        >>> unprintable("caf\\\\xe9.mp4") == "caf\\udce9.mp4"
        True
    """
    return os.fsdecode(re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]),
                              text.encode("utf-8")))


@contextlib.contextmanager
def opencv_name(path: str) -> Iterator[str]:
    """A name of ``path`` that OpenCV can take. A file named on another system (Latin-1 or
    Shift-JIS bytes, not UTF-8; Python holds them as surrogates) crashed OpenCV's reader, the
    whole run gone at once (a segmentation fault); such a file is named to OpenCV by a link
    with a plain name, in a folder of its own, for as long as the ``with`` lasts."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        suffix = Path(path).suffix
        with tempfile.TemporaryDirectory(prefix="streamfer-") as folder:
            link = os.path.join(folder, "input" + (suffix if suffix.isascii() else ""))
            os.symlink(os.path.abspath(path), link)
            yield link
        return
    yield path


NAME_MAX = 255  # bytes in one name, on the file systems we write (ext4, XFS, Btrfs, APFS)


def _stem_to_fit(path: Path, room: int) -> str:
    """``path``'s stem, or, where ``room`` bytes more would not fit in a name with it, its
    first bytes and a hash of the whole name (a legal output name's part file was refused as
    too long: 'File name too long' after the work)."""
    stem = os.fsencode(path.stem)
    if len(stem) + room <= NAME_MAX:
        return path.stem
    digest = hashlib.sha256(os.fsencode(path.name)).hexdigest()[:8]
    cut = stem[:NAME_MAX - room - 9]
    try:  # a UTF-8 name is cut between characters (a name in other bytes where it falls)
        stem.decode("utf-8")
        cut = cut.decode("utf-8", "ignore").encode("utf-8")
    except UnicodeDecodeError:
        pass
    return f"{os.fsdecode(cut)}~{digest}"


def part_path(path: Path, tag: str = "part") -> Path:
    """Where ``path`` is written until it is whole (``tag``: another stage's file, hidden
    alike: ``.x.mux.mp4``)."""
    path = Path(path)
    room = len("..") + len(tag) + len(os.fsencode(path.suffix))
    return path.with_name(f".{_stem_to_fit(path, room)}.{tag}{path.suffix}")


def unwritable(path: Path) -> str | None:
    """Why ``path`` could not be written, or None; checked before a run, creating nothing:
    its nearest existing folder must be a folder this process may write in (the folders
    between are made when it is written), and ``path`` itself no folder."""
    if (n := len(os.fsencode(Path(path).name))) > NAME_MAX:  # before the disk is asked
        return f"its name is {n} bytes long, over the {NAME_MAX} a file system takes"
    if Path(path).is_dir():
        return "it is a folder, not a file"
    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        read_only = os.statvfs(folder).f_flag & os.ST_RDONLY
        return f"{folder} is on a read-only file system" if read_only \
            else f"permission denied in {folder}"
    return None


def is_part(path: Path) -> bool:
    """A part file of ours, or any hidden file: never an input, never a finished output."""
    return Path(path).name.startswith(".")


def cannot_write(path, why: BaseException | str | None) -> str:
    """The one way we say an output failed: its name (never its part file's) and why, in
    words: the system's reason alone for an OS error, else the error as it says
    (``cannot write out/r.html: No space left on device``)."""
    if isinstance(why, OSError) and why.strerror:
        why = why.strerror
    elif isinstance(why, BaseException):
        why = str(why).strip() or type(why).__name__
    return f"cannot write {printable(str(path))}: {'' if why is None else why}"


class WriteError(OSError):
    """An output the system would not take (a full disk, a quota): its path and the
    system's reason, in words (see :func:`cannot_write`)."""

    def __str__(self) -> str:
        return cannot_write(self.filename, self.strerror)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO]:
    """A file object whose contents appear at ``path`` only if the block ends without an
    error (written to a unique hidden part file beside it, then renamed; concurrent writers
    of the same file never see each other's halves)."""
    path = Path(path)
    room = len("..") + 8 + len(".part") + len(os.fsencode(path.suffix))  # 8: mkstemp's letters
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{_stem_to_fit(path, room)}.",
                                   suffix=f".part{path.suffix}")
    except OSError as exc:  # said by the file's name, not its part file's
        raise WriteError(exc.errno, exc.strerror or str(exc), str(path)) from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_UMASK)  # as open() would make it: mkstemp's is owner-only
        os.replace(tmp, path)
    except OSError as exc:  # a write or flush says no path ("[Errno 28] No space left ...")
        if exc.filename in (None, tmp) and exc.strerror:
            raise WriteError(exc.errno, exc.strerror, str(path)) from None
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomically(path: Path, data: bytes | str) -> Path:
    """``data`` at ``path``, all of it or nothing (see :func:`atomic_file`)."""
    with atomic_file(path, "w" if isinstance(data, str) else "wb") as f:
        f.write(data)
    return Path(path)

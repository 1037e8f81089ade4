"""Output files, written whole or not at all.

Every file wattprint writes for the user (exports, the HTML report, energy labels,
``wattprint measure --out``, the results of ``measure_energy``) goes through
:func:`write_bytes` or :func:`write_text` (a model variant that a framework writes itself,
through :func:`replaced_whole`): the data goes to a temporary file in the target's
folder, is flushed to disk, and only then takes the target's name with ``os.replace``. A full
disk, a file-size limit or a crash part-way leaves the previous file, or none, never a
truncated one; the temporary file is removed on failure. The new file gets the mode a file
made with ``open(path, "w")`` would have: the old file's, or ``0o666`` less the umask.

An ``OSError`` on the way (no space left, file too large, a read-only file system, permission
denied) becomes an :class:`~wattprint.errors.OutputError` naming the file and the reason.
:func:`check_writable` says so before any work is done.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from .errors import OutputError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["check_writable", "folder_problem", "make_folder", "replaced_whole", "store_problem",
           "write_bytes", "write_text"]


def _error(target: Path, err: OSError) -> OutputError:
    reason = err.strerror or str(err)
    return OutputError(f"cannot write {str(target)!r}: {reason}; an existing file there is "
                       "left as it was", path=target, reason=reason, errno=err.errno)


def _temporary(folder: Path, name: str) -> tuple[int, Path]:
    """A new empty file in ``folder``, open for writing, made as ``open(..., "w")`` would
    make it (mode ``0o666`` less the umask); its descriptor and path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = folder / f".{name[:100]}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {str(folder)!r}")


def _sync_folder(folder: Path) -> None:
    """Make the new name durable; not every system can open a folder, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); return the path.

    A path that is a device or a pipe (``/dev/stdout``) is written in place; a symbolic link
    to a file is followed, and the file it names is replaced.
    """
    target = Path(os.fspath(path))
    try:
        info: os.stat_result | None = target.stat()
    except OSError:  # missing (the usual case), or a broken link: made anew
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError(f"cannot write {str(target)!r}: it is a folder; pass a file path",
                          path=target, reason="it is a folder")
    if info is not None and not stat.S_ISREG(info.st_mode):
        try:
            with open(target, "wb") as f:
                f.write(data)
        except OSError as err:
            raise _error(target, err) from err
        return target
    with replaced_whole(target) as temporary:
        fd = os.open(temporary, os.O_WRONLY | getattr(os, "O_BINARY", 0))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    return target


@contextlib.contextmanager
def replaced_whole(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file's path in ``path``'s folder, for whatever writes the file (``torch.save``,
    an exporter, a quantizer, :func:`write_bytes`): when the block ends without an error, the
    file is flushed to disk and takes ``path``'s name (and the mode of a file it replaces);
    otherwise it is removed, and whatever was at ``path`` is left as it was. An ``OSError``
    (the block's, or the rename's) becomes an :class:`~wattprint.errors.OutputError` naming
    ``path``."""
    target = Path(os.fspath(path))
    final = Path(os.path.realpath(target)) if target.is_symlink() else target
    try:
        fd, temporary = _temporary(final.parent, final.name)
    except OSError as err:
        raise _error(target, err) from err
    os.close(fd)
    try:
        yield temporary
        fd = os.open(temporary, os.O_WRONLY | getattr(os, "O_BINARY", 0))  # writable: fsync
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):  # the file it replaces keeps its mode
            os.chmod(temporary, stat.S_IMODE(os.stat(final).st_mode))
        os.replace(temporary, final)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(err, OSError):
            raise _error(target, err) from err
        raise
    _sync_folder(final.parent)


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8",
               newline: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically; ``newline`` as for :func:`open` (None: each
    ``\\n`` becomes ``os.linesep``; ``""`` or ``"\\n"``: written as is)."""
    if newline is None:
        newline = os.linesep
    if newline not in ("", "\n"):
        text = text.replace("\n", newline)
    return write_bytes(path, text.encode(encoding))


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Raise :class:`~wattprint.errors.OutputError` unless a file can be written at ``path``:
    a folder, a missing folder or one that refuses a new file (read-only, no permission) are
    refused. Nothing is left behind. Call it before the work whose result goes there."""
    target = Path(os.fspath(path))
    if target.is_dir():
        raise OutputError(f"cannot write {str(target)!r}: it is a folder; pass a file path",
                          path=target, reason="it is a folder")
    if target.exists() and not target.is_file():
        return target  # a device or a pipe, written in place
    final = Path(os.path.realpath(target)) if target.is_symlink() else target
    folder = final.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {str(target)!r}: the folder {str(folder)!r} does not "
                          "exist; create it first", path=target, reason="no such folder")
    try:
        fd, probe = _temporary(folder, final.name)
    except OSError as err:
        reason = err.strerror or str(err)
        raise OutputError(f"cannot write {str(target)!r}: the folder {str(folder)!r} does not "
                          f"take new files ({reason})", path=target, reason=reason,
                          errno=err.errno) from err
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return target


def make_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` made as a folder (with its parents) if missing; an ``OSError`` becomes an
    :class:`~wattprint.errors.OutputError`."""
    folder = Path(os.fspath(path))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or str(err)
        raise OutputError(f"cannot make the folder {str(folder)!r}: {reason}", path=folder,
                          reason=reason, errno=err.errno) from err
    return folder


def folder_problem(folder: Path) -> str | None:
    """What stops ``folder`` being made (with its parents) and written in, or None."""
    if folder.exists():
        if not folder.is_dir():
            return f"{str(folder)!r} is a file, not a folder"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"the folder {str(folder)!r} is not writable"
        return None
    above = folder.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        return f"cannot create the folder {str(folder)!r}: {str(above)!r} is a file"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"cannot create the folder {str(folder)!r}: {str(above)!r} is not writable"
    return None


def store_problem(db: Path) -> str | None:
    """What stops the results store ``db`` being made or written, seen without opening it
    (the store itself says whether an existing file is a results store), or None."""
    if str(db) == ":memory:":
        return None
    folder = db.parent
    if db.is_dir():
        return (f"the results store {str(db)!r} is a folder; pass a file path such as "
                f"{str(db / 'wattprint.db')!r}")
    if folder.exists() and not folder.is_dir():
        return f"cannot open the results store {str(db)!r}: {str(folder)!r} is a file"
    if not folder.is_dir():
        return (f"cannot open the results store {str(db)!r}: the folder {str(folder)!r} does "
                "not exist; create it first or pass another path")
    if not os.access(folder, os.W_OK | os.X_OK) or (
            db.exists() and not os.access(db, os.R_OK | os.W_OK)):
        return (f"cannot write the results store {str(db)!r}: check that the file and its "
                "folder are writable")
    return None

"""Output files written safely, as a set.

:func:`reserve` checks every output before any long work starts (refusing existing files
without consent, inputs of the same run, folders, missing or unwritable locations and a full
disk) and creates a hidden temporary file beside each. :meth:`Reservation.commit` writes all
temporaries and only then renames them over their targets: an interrupt, a crash or a full disk
leaves the previous files and no partial new ones. New files get the umask's mode, replaced
files keep theirs. Temporaries left by killed processes are swept by later writes.
"""

import contextlib
import errno
import os
import re
import secrets
import shutil
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from ..engine.errors import UNetError, os_error_message

TEMPORARY_SUFFIX = ".unet-tmp"
STALE_AFTER_S = 15 * 60
NAME_MAX = 255
"""The longest file name, in bytes, on the usual file systems."""
_OURS = re.compile(r"^\..+\.(\d+)-[0-9a-f]+" + re.escape(TEMPORARY_SUFFIX) + "$")


class Reservation:
    """Checked outputs, each with a hidden temporary file beside it; see :func:`reserve`."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.temporaries: list[Path] = []

    def commit(self, writers: Iterable[Callable[[BinaryIO], object]]) -> list[Path]:
        """Write every output with its writer (one per path, given an open binary file), then
        rename them all; on any failure remove the temporaries and leave the targets alone."""
        writers = list(writers)
        if len(writers) != len(self.paths):
            raise ValueError("one writer per reserved path is needed")
        path, renamed = self.paths[0], []
        try:
            for path, temporary, write in zip(self.paths, self.temporaries, writers, strict=True):
                with open(temporary, "wb") as file:
                    write(file)
                    file.flush()
                    os.fsync(file.fileno())
                _copy_mode(path, temporary)
            with _signals_deferred():
                for path, temporary in zip(self.paths, self.temporaries, strict=True):
                    os.replace(temporary, path)
                    renamed.append(path.name)
                self.temporaries = []
        except OSError as error:
            done = f"only {', '.join(renamed)} was replaced" if renamed else "nothing was written"
            raise UNetError(f"cannot write {path}: {_reason(error)}; {done}") from None
        finally:
            self.release()
        return self.paths

    def release(self) -> None:
        """Remove the temporaries not (yet) renamed."""
        for temporary in self.temporaries:
            with contextlib.suppress(OSError):
                temporary.unlink()
        self.temporaries = []

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class FolderOutput:
    """A folder output (a zarr store) written under a hidden name beside ``target`` and renamed
    over it by :meth:`commit` once complete; :meth:`release` removes what was not committed."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self.folder = self.target.parent / (
            f".{self.target.name}.{os.getpid()}-{secrets.token_hex(4)}"
        )

    def commit(self) -> Path:
        """Put the folder in place of the target (the previous target is kept on failure)."""
        previous = self.folder.with_name(f"{self.folder.name}-replaced")
        if self.target.exists():
            os.replace(self.target, previous)
        try:
            os.replace(self.folder, self.target)
        except OSError:
            if previous.exists():
                os.replace(previous, self.target)
            raise
        shutil.rmtree(previous, ignore_errors=True)
        return self.target

    def release(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def reserve(
    paths: Iterable[str | Path],
    *,
    overwrite: bool = False,
    inputs: dict[str | Path, str] | None = None,
    hint: str = "use --overwrite to replace it",
    replaceable: Callable[[Path], str | None] | None = None,
    needed_bytes: int = 0,
) -> Reservation:
    """Check the outputs ``paths`` and create their temporaries.

    ``inputs`` maps the files read by the same run to what they are ("the image"): they are
    never replaced. An existing output is refused unless ``overwrite`` (``hint`` tells how to
    give it), and even then when ``replaceable(path)`` returns a reason not to replace it.
    ``needed_bytes`` is a rough size of all outputs, checked against the free space of each
    output folder.
    """
    reservation = Reservation([_checked(Path(p)) for p in paths])
    _refuse_duplicates(reservation.paths)
    for path in reservation.paths:
        for source, role in (inputs or {}).items():
            if _same_file(path, Path(source)):
                raise UNetError(f"{path} is {role} of this run; choose another output file")
        if path.exists():
            if not overwrite:
                raise UNetError(f"{path} already exists; {hint}")
            reason = replaceable(path) if replaceable else None
            if reason:
                raise UNetError(f"{path} {reason}; not overwriting it")
    try:
        for path in reservation.paths:
            sweep_stale(path.parent)
            reservation.temporaries.append(_create_temporary(path))
        for folder in {path.parent for path in reservation.paths}:
            check_free_space(folder, needed_bytes)
    except BaseException:
        reservation.release()
        raise
    return reservation


def sweep_stale(folder: Path, now: float | None = None) -> list[Path]:
    """Remove this package's temporaries in ``folder`` left by processes that are gone (older
    than STALE_AFTER_S); nothing else, whatever its name."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _OURS.match(entry.name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        pid = int(match.group(1))
        with contextlib.suppress(OSError):
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if age > STALE_AFTER_S and not _alive(pid, age):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _checked(path: Path) -> Path:
    if path.is_dir():
        raise UNetError(f"{path} is a folder; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise UNetError(f"cannot write {path}: the folder {parent} does not exist")
    return path


def _refuse_duplicates(paths: list[Path]) -> None:
    for i, path in enumerate(paths):
        for other in paths[:i]:
            if _same_file(path, other):
                raise UNetError(f"{path} is given for two outputs; give each its own file")


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)


def _create_temporary(path: Path) -> Path:
    """An empty hidden file beside ``path``, created with the umask's mode."""
    tail = f".{os.getpid()}-{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
    name = "." + _shortened(path.name, NAME_MAX - 1 - len(tail)) + tail
    temporary = path.parent / name
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason = "read-only" if error.errno == errno.EROFS else "not writable"
            raise UNetError(f"cannot write {path}: the folder {path.parent} is {reason}") from None
        raise UNetError(f"cannot write {path}: {_reason(error)}") from None
    return temporary


def _shortened(name: str, limit: int) -> str:
    """``name`` cut to at most ``limit`` bytes (file names are limited in bytes, not
    characters; a character cut in two stays a valid file name on POSIX)."""
    return os.fsdecode(os.fsencode(name)[:limit]) or "output"


def _reason(error: OSError) -> str:
    """What went wrong, without the name of the temporary file."""
    return os_error_message(OSError(error.errno, error.strerror or str(error)))


def check_free_space(folder: Path, needed: int) -> None:
    """A UNetError when ``needed`` bytes are more than the free space in ``folder``."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UNetError(
            f"the outputs need about {needed / 2**20:.0f} MiB but only {free / 2**20:.0f} MiB "
            f"are free in {folder}"
        )


def _copy_mode(path: Path, temporary: Path) -> None:
    """Give a replacing file the mode of the file it replaces."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))


def _alive(pid: int, age: float) -> bool:
    if os.name != "posix":
        return age < 24 * 3600
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM back while the outputs are renamed, so the set stays whole;
    a signal received meanwhile is raised again afterwards (Python handles signals in the main
    thread only, so elsewhere nothing is deferred)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(s, lambda signum, frame: received.append(signum)) for s in signals]
    try:
        yield
    finally:
        for s, handler in zip(signals, previous, strict=True):
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if received:
            signal.raise_signal(received[0])

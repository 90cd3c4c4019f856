"""One writer per output, and the hidden names beside it.

A run takes an exclusive lock on its output before any work (``fcntl.flock`` on a lock file beside
the output; ``msvcrt.locking`` on Windows). A second run on the same output finds it taken and
refuses at once; ``--overwrite`` replaces a finished output, never one being written. The kernel
drops the lock when its holder dies, however it dies, so a crashed run never blocks the next one.

Beside the output live its temporary names (``.NAME.pervfi-partial-PID.EXT``, renamed into place
when complete) and the lock (``.NAME.pervfi-lock.EXT``). All of them fit the longest legal output
name (NAME_MAX bytes): a long stem is shortened and a hash of it added. A temporary name left by a
run that no longer exists (SIGKILL, power loss) is removed by the next run in that folder; never one
of a live process, nor of an output whose lock a live run holds (another machine on a shared disk).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
from pathlib import Path

from ..errors import InputError

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows (NTFS: 255 UTF-16 units)
_TAG_ROOM = len(".pervfi-partial-") + 10  # the longest tag with a 10-digit pid
_SIDE = re.compile(r"^\.(?P<stem>.*)\.pervfi-(?:partial|old)-(?P<pid>\d+)(?P<suffix>(?:\.[^.]*)?)$")
_LOCK = re.compile(r"^\..*\.pervfi-lock(?:\.[^.]*)?$")


def _short_stem(stem: str, suffix: str) -> str:
    """``stem``, or a prefix of it plus a hash when ``.stem`` + tag + ``suffix`` would exceed NAME_MAX."""
    room = NAME_MAX - 1 - _TAG_ROOM - len(os.fsencode(suffix))
    if len(os.fsencode(stem)) <= room:
        return stem
    digest = hashlib.sha1(os.fsencode(stem)).hexdigest()[:10]
    head = os.fsencode(stem)[:room - 11].decode(errors="ignore")  # whole characters only
    return f"{head}~{digest}"


def side_name(path: Path, tag: str) -> Path:
    """The hidden name ``.STEM.pervfi-TAG.EXT`` beside ``path`` (same folder: renames there are atomic;
    same extension: ffmpeg picks the container from it)."""
    return path.with_name(f".{_short_stem(path.stem, path.suffix)}.pervfi-{tag}{path.suffix}")


def temp_name(path: Path, tag: str = "partial") -> Path:
    """This process's temporary name for ``path``."""
    return side_name(path, f"{tag}-{os.getpid()}")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (when unsure: True, nothing is removed)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() != 87  # ERROR_INVALID_PARAMETER: no such process
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, someone else's
    return True


def _try_lock(fd: int) -> bool:
    if os.name == "nt":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


_HELD: dict[Path, list] = {}  # lock file -> [fd, holds]: this process's locks (re-entrant)


class OutputLock:
    """The exclusive right to write ``output``. ``acquire()`` raises :class:`InputError` when another run
    holds it; re-entrant within one process (the CLI takes it first, the writer again)."""

    def __init__(self, output):
        self.output = Path(output).absolute()
        self.path = side_name(self.output, "lock")
        self._made_folder: Path | None = None
        self.held = False

    def acquire(self) -> "OutputLock":
        if self.held:
            return self
        if self.path in _HELD:
            _HELD[self.path][1] += 1
            self.held = True
            return self
        self._make_folder()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
            if not _try_lock(fd):
                owner = _read_owner(fd)
                os.close(fd)
                self._remove_folder()
                raise InputError(f"output {self.output} is being written by another run{owner}; wait for it to "
                                 "finish or choose another output name (--overwrite does not stop a live run)")
            # The holder before us may have removed the file between our open and our lock: lock the file
            # that has the name now, or a third run could lock a new one beside us.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same or os.name == "nt":
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        _HELD[self.path] = [fd, 1]
        self.held = True
        remove_stale(self.output.parent)
        return self

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        entry = _HELD[self.path]
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _HELD[self.path]
        if os.name != "nt":
            with contextlib.suppress(OSError):
                self.path.unlink()  # while still locked: the next run locks a file of its own
        os.close(entry[0])
        if os.name == "nt":
            with contextlib.suppress(OSError):
                self.path.unlink()
        self._remove_folder()

    def _make_folder(self) -> None:
        missing = self.path.parent
        while not missing.parent.exists() and missing.parent != missing:
            missing = missing.parent
        if not self.path.parent.exists():
            from .advice import folder_error

            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise folder_error(self.path.parent, err) from err
            self._made_folder = missing

    def _remove_folder(self) -> None:
        """A folder made only for the lock goes again when nothing else was written there."""
        folder, top = self.path.parent, self._made_folder
        if top is None:
            return
        while True:
            try:
                folder.rmdir()
            except OSError:
                return
            if folder == top:
                return
            folder = folder.parent

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_owner(fd: int) -> str:
    try:
        text = os.read(fd, 32).decode(errors="replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def remove_stale(folder: Path) -> list[Path]:
    """Remove the temporary outputs in ``folder`` left by runs that no longer exist; returns them."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if _LOCK.match(entry.name):
            _remove_free_lock(Path(entry.path))
            continue
        m = _SIDE.match(entry.name)
        if m is None or pid_alive(int(m.group("pid"))):
            continue
        lock = folder / f".{m.group('stem')}.pervfi-lock{m.group('suffix')}"
        if not _unlocked(lock):
            continue  # a live run (maybe on another machine) writes that output
        path = Path(entry.path)
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def _remove_free_lock(lock: Path) -> None:
    """A lock file nobody holds (its run was killed) goes: removed while we hold it, as :meth:`release` does."""
    if lock in _HELD or os.name == "nt":
        return
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return
    try:
        if _try_lock(fd) and os.path.samestat(os.fstat(fd), os.stat(lock)):
            lock.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlocked(lock: Path) -> bool:
    """Nobody holds ``lock`` (it is ours, absent, or can be taken right now)."""
    if lock in _HELD or not lock.exists():
        return True
    try:
        fd = os.open(lock, os.O_RDWR | getattr(os, "O_BINARY", 0))
    except OSError:
        return not lock.exists()
    try:
        return _try_lock(fd)  # closing the descriptor releases it again
    finally:
        os.close(fd)

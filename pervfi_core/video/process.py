"""ffmpeg children that never outlive this process, whatever ends it (SIGKILL included).

On Linux a child started from the main thread asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``, set between fork and exec). The kernel ties that signal to the *thread*
that forked, so children started from other threads (ComfyUI runs nodes in a worker thread), and
every child on other systems, are watched instead by one small watchdog process per parent: it
reads the pids to guard from a pipe and kills the ones still registered when the pipe reaches its
end, which happens when the parent is gone, however it ended.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading

from ..errors import InputError

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The signals that end a run like Ctrl-C (the output removed, 128 + n): SIGHUP is a closed terminal,
# SIGQUIT Ctrl-\, SIGUSR1/2 what job schedulers send before a kill. Those absent (Windows) are skipped.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")

# The watchdog: register "+pid", release "-pid"; at end of input, kill what is registered.
_WATCHDOG_CODE = r"""
import os, signal, sys
guarded = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        guarded.add(int(line[1:]))
    elif line[:1] == "-":
        guarded.discard(int(line[1:]))
for pid in guarded:
    try:
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    except OSError:
        pass
"""


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with ``imageio-ffmpeg`` (or ``$IMAGEIO_FFMPEG_EXE``), checked to exist."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise InputError(
            "video files need the ffmpeg binary from imageio-ffmpeg: pip install imageio-ffmpeg "
            "(or use folders of PNG frames)"
        ) from None
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as err:  # no bundled binary for this platform and none on PATH
        raise InputError(f"no ffmpeg binary found ({err}); install ffmpeg or set IMAGEIO_FFMPEG_EXE to one") from None
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        source = "IMAGEIO_FFMPEG_EXE" if os.environ.get("IMAGEIO_FFMPEG_EXE") else "imageio-ffmpeg"
        raise InputError(f"the ffmpeg binary {exe} (from {source}) does not exist or cannot be run; point "
                         "IMAGEIO_FFMPEG_EXE at an ffmpeg executable or unset it to use the bundled one")
    return exe


def _prctl():
    """libc's prctl, looked up in the parent (nothing is loaded between fork and exec); None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with(parent: int):
    def preexec() -> None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody would reap us
            os._exit(1)
    return preexec


class _Watchdog:
    """The one watchdog process of this process (started on first use, restarted if it died)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pid = None  # the parent it watches (a forked child must start its own)

    def _send(self, line: str) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None or self._pid != os.getpid():
                self._proc = subprocess.Popen([sys.executable, "-c", _WATCHDOG_CODE], stdin=subprocess.PIPE,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                                              **_detached())
                self._pid = os.getpid()
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()

    def guard(self, pid: int) -> None:
        self._send(f"+{pid}")

    def release(self, pid: int) -> None:
        try:
            self._send(f"-{pid}")
        except OSError:
            pass  # the watchdog is gone: nothing left to release


def _detached() -> dict:
    """The watchdog must survive the signal that kills its parent's process group (Ctrl-C, a closed terminal)."""
    if os.name == "posix":
        return {"start_new_session": True}
    return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


WATCHDOG = _Watchdog()


def uses_parent_death_signal() -> bool:
    """Whether a child started now dies by the kernel's parent-death signal (else the watchdog kills it)."""
    return _PRCTL is not None and threading.current_thread() is threading.main_thread()


class Child(subprocess.Popen):
    """A :class:`subprocess.Popen` that dies with this process (see the module's docstring)."""

    def __init__(self, cmd, **kwargs):
        self._watched = False
        watched = not uses_parent_death_signal()
        if not watched:
            kwargs["preexec_fn"] = _die_with(os.getpid())
        super().__init__(cmd, **kwargs)
        self._watched = watched
        if watched:
            WATCHDOG.guard(self.pid)

    def wait(self, timeout=None):
        rc = super().wait(timeout)
        self._reaped()
        return rc

    def poll(self):
        rc = super().poll()
        if rc is not None:
            self._reaped()
        return rc

    def _reaped(self) -> None:
        if self._watched:  # its pid may be reused now: the watchdog must forget it
            self._watched = False
            WATCHDOG.release(self.pid)


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` with a :class:`Child`; killed if interrupted."""
    with Child(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace") as proc:
        try:
            out, err = proc.communicate()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

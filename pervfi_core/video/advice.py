"""Write errors a user can act on: what failed, the OS error, and what to do about it."""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from ..errors import InputError


class WriteError(InputError):
    """The output could not be written (disk full, file too large, folder removed, no permission...).

    ``path`` is the file or folder that failed, ``errno`` the OS error number when one is known.
    """

    def __init__(self, message: str, *, path: Path | None = None, errno: int | None = None):
        super().__init__(message)
        self.path, self.errno = path, errno


# What to do about the OS errors an output can meet (matched by number, or by ffmpeg's message text).
_ADVICE = {
    errno.ENOSPC: "The disk is full: free some space or write the output to another disk, then run again",
    errno.EDQUOT: "The disk quota is used up: free some space or write the output elsewhere, then run again",
    errno.EFBIG: "The file grew beyond the file-size limit (ulimit -f) or the largest file this filesystem "
                 "allows (FAT32: 4 GiB): write to another disk (or split the work into shorter clips)",
    errno.ENOENT: "The output folder was removed or renamed while writing: choose an existing folder and run again",
    errno.EACCES: "No permission to write there: choose a folder you can write to",
    errno.EPERM: "No permission to write there: choose a folder you can write to",
    errno.EROFS: "The disk is read-only: choose a writable folder",
    errno.EIO: "The disk reported an I/O error: check the disk (or its connection) and write elsewhere",
}
_GENERIC_ADVICE = "Check that the output folder exists, is writable and has free space, then run again"
FFMPEG_ADVICE = ("ffmpeg's message says why (an encoder option, a codec the container refuses...); if it is "
                  "about the disk, check that the output folder exists, is writable and has free space")


def advice(code: int | None, text: str = "", default: str = _GENERIC_ADVICE) -> tuple[int | None, str]:
    """The OS error (by number, else found by its message in ``text``) and what to do about it."""
    if code in _ADVICE:
        return code, _ADVICE[code]
    for number, what in _ADVICE.items():
        if os.strerror(number) in text:
            return number, what
    return code, default


def os_write_error(what: Path, output: Path, err: OSError) -> WriteError:
    code, what_to_do = advice(err.errno, str(err))
    reason = err.strerror or str(err)
    return WriteError(f"cannot write {what}: {reason}. {what_to_do}. Nothing was kept under {output} "
                      "(the partial output was removed).", path=what, errno=code)


def tail(log, chars: int) -> str:
    """The end of a captured stderr file, as one line."""
    try:
        log.seek(0)
        text = log.read().decode(errors="replace").strip()
    except (OSError, ValueError):
        return ""
    # ffmpeg's object addresses ("[out#0/mp4 @ 0x55...]") and repeat notes only make the message longer.
    lines = [re.sub(r" @ 0x[0-9a-f]+", "", line).strip() for line in text.splitlines()
             if line.strip() and "Last message repeated" not in line]
    return " | ".join(lines[-4:])[-chars:]


def folder_error(folder: Path, err: OSError) -> WriteError:
    """An output folder that cannot be created."""
    code, what_to_do = advice(err.errno, str(err))
    return WriteError(f"cannot create the output folder {folder}: {err.strerror or err}. {what_to_do}.", path=folder,
                      errno=code)

"""HTTP(S) downloads that never leave a file that looks valid unless it is.

The body streams into ``<dest>.part``; only after the size, the sha256 (when known) and a caller's
check (the layout fingerprint) pass is it renamed to ``dest`` with an atomic ``os.replace``. An
interrupted transfer keeps the ``.part`` file and the next attempt resumes it with an HTTP ``Range``
request; a server that ignores ``Range`` gets a clean restart. A file that fails verification is
deleted. Plain :mod:`urllib` only (no extra dependency).
"""
from __future__ import annotations

import http.client
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import DownloadError, WeightsError
from .io import sha256_file

logger = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]  # (bytes done, total bytes or None)
_CHUNK = 1 << 16
_USER_AGENT = "pervfi-core-weights/1"


class _Retryable(Exception):
    """A transfer problem worth another attempt (connection lost, truncated body, 5xx)."""


class _Unreachable(_Retryable):
    """The server could not be reached at all (offline, DNS failure, nothing listening)."""


def console_progress(label: str) -> Progress:
    """A progress bar on stderr when it is a terminal, else a log line every 25 %."""
    tty = sys.stderr.isatty()
    state = {"quarter": -1}

    def report(done: int, total: int | None) -> None:
        mb = done / 2**20
        if tty:
            tail = f"{mb:8.1f}/{total / 2**20:.1f} MB {100 * done // total:3d}%" if total else f"{mb:8.1f} MB"
            width = 30
            filled = width * done // total if total else 0
            sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {tail}")
            if total and done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif total and (q := 4 * done // total) > state["quarter"]:
            state["quarter"] = q
            logger.info("%s: %d%% of %.1f MB", label, 25 * q, total / 2**20)

    return report


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _transfer(url: str, part: Path, timeout: float, progress: Progress | None) -> None:
    """One attempt: append to (or restart) ``part`` until the body is complete."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # our partial file is not a prefix the server recognises
            part.unlink(missing_ok=True)
            raise _Retryable(f"server refused to resume at byte {offset} (HTTP 416); restarting") from None
        if err.code >= 500 or err.code == 429:
            raise _Retryable(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(f"HTTP {err.code} {err.reason} for {url}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise _Unreachable(f"cannot connect ({reason})") from None
    with resp:
        length = resp.headers.get("Content-Length")
        if resp.status == 206 and offset:
            crange = resp.headers.get("Content-Range", "")
            if not crange.startswith(f"bytes {offset}-"):
                part.unlink(missing_ok=True)
                raise _Retryable(f"server resumed at the wrong place ({crange!r}); restarting")
            mode = "ab"
        else:  # 200: whole body (a server that ignores Range): clean restart
            if offset:
                logger.info("server ignored the resume request; downloading %s from the start", part.name)
            offset, mode = 0, "wb"
        total = offset + int(length) if length is not None else None
        done = offset
        try:
            with open(part, mode) as out:
                while block := resp.read(_CHUNK):
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
        except (http.client.IncompleteRead, OSError) as err:
            raise _Retryable(f"connection lost after {done} of {total or '?'} bytes ({type(err).__name__})") from None
    if total is not None and done != total:
        raise _Retryable(f"body truncated: received {done} of {total} bytes")


def download_url(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    verify: Callable[[Path], None] | None = None,
    attempts: int = 3,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: Progress | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``; verify; rename atomically.

    ``sha256``: expected hex digest (checked when given). ``verify(path)``: extra check of the
    complete ``.part`` file (raises :class:`WeightsError` to reject it). Up to ``attempts`` tries,
    resuming with HTTP Range, ``backoff`` seconds times the attempt number between tries.
    Raises :class:`DownloadError` saying what went wrong (``.offline`` is True when the server
    was never reached); ``dest`` is then never created, and a
    rejected ``.part`` file is deleted (an interrupted one is kept for resuming).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    problems: list[str] = []
    unreachable = True
    for attempt in range(1, attempts + 1):
        resumed = part.exists() and part.stat().st_size > 0
        try:
            _transfer(url, part, timeout, progress)
        except _Retryable as err:
            unreachable = unreachable and isinstance(err, _Unreachable)
            problems.append(f"attempt {attempt}: {err}")
            logger.warning("download of %s: %s", dest.name, err)
            if attempt < attempts:
                time.sleep(backoff * attempt)
            continue
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
        unreachable = False
        if sha256:
            actual = sha256_file(part)
            if actual != sha256.lower():
                part.unlink(missing_ok=True)
                problems.append(f"attempt {attempt}: sha256 {actual} instead of {sha256}")
                if resumed and attempt < attempts:  # the kept prefix may have been bad: start clean
                    continue
                raise DownloadError(
                    f"{dest.name} from {url} does not match its published hash: sha256 {actual}, "
                    f"expected {sha256}. The download was deleted. The file on the server may have "
                    "changed or the transfer was corrupted; try again, or get the file another way."
                )
        if verify is not None:
            try:
                verify(part)
            except WeightsError as err:
                part.unlink(missing_ok=True)
                raise DownloadError(f"{dest.name} from {url} was downloaded but rejected: {err}. "
                                    "The download was deleted.") from err
        os.replace(part, dest)  # atomic: dest appears only complete and verified
        return dest
    error = DownloadError(
        f"download of {dest.name} from {url} failed after {attempts} attempts: " + "; ".join(problems)
    )
    error.offline = unreachable  # never reached the server: callers add "where to put the file"
    raise error

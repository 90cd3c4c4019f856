"""The job directory: finished segments, the manifest that says what they are, resume.

Layout (beside the output, ``.<output name>.pervfi-job/`` unless given)::

    manifest.json                      input identity, what decides the frames, the scan and the plan
    lock                               held (flock) by the one driver working on the job
    seg-0000000-0000048/               a finished segment: frame_000000.png ... and meta.json
    .seg-0000048-0000096.<id>.partial/ a segment being written by one attempt (id: the attempt)

A segment is written into its own ``.partial`` folder and renamed to its final name only when every
frame is there, so a worker killed mid-segment never leaves a folder that looks finished; a retry
writes a new partial folder. A re-run with the same input (path, size, mtime) and the same
frame-deciding settings keeps the finished segments; anything else starts the job afresh.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from ..errors import InputError
from .segments import Segment

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1
META = "meta.json"
_PARTIAL = ".partial"
_REMOVING = ".removing-"


def default_job_dir(output) -> Path:
    """``.<name>.pervfi-job`` beside ``output`` (same disk: segments are renamed, not copied)."""
    output = Path(output)
    return output.with_name(f".{output.name}.pervfi-job")


class JobDir:
    """One job's folder (module docstring). ``identity``: what must match for finished segments to count."""

    def __init__(self, root):
        self.root = Path(root)
        self._lock = None

    # ------------------------------------------------------------------ manifest and lock
    def acquire(self) -> None:
        """Create the folder and hold its lock; InputError when another driver holds it."""
        import fcntl

        for leftover in self.root.parent.glob(f"{self.root.name}{_REMOVING}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.root / "lock", "a+")
        except OSError as err:
            raise InputError(f"cannot create the job folder {self.root}: {err.strerror or err}; "
                             "choose another with --job-dir") from err
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            self._lock.close()
            self._lock = None
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise InputError(f"another run is working on {self.root} (same output); wait for it to end, "
                                 "or give this one another output or --job-dir") from None
            raise

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def manifest(self) -> dict | None:
        try:
            return json.loads((self.root / "manifest.json").read_text())
        except (OSError, ValueError):
            return None

    def start(self, identity: dict, extra: dict) -> bool:
        """Keep the finished segments if the manifest's identity equals ``identity`` (True), else empty
        the folder and write a new manifest (False). Partial folders of earlier attempts go either way."""
        old = self.manifest()
        resumed = old is not None and old.get("version") == MANIFEST_VERSION and old.get("identity") == identity
        if not resumed and old is not None:
            logger.warning("%s holds segments of another input or other settings; starting afresh", self.root)
        for entry in self.root.iterdir():
            if entry.name == "lock" or (resumed and not entry.name.endswith(_PARTIAL)):
                continue
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        if not resumed:
            self._write_json(self.root / "manifest.json", {"version": MANIFEST_VERSION, "identity": identity, **extra})
        return resumed

    def update(self, **fields) -> None:
        """Add ``fields`` to the manifest (the plan, once made)."""
        self._write_json(self.root / "manifest.json", {**(self.manifest() or {}), **fields})

    @staticmethod
    def _write_json(path: Path, data: dict) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)

    # ------------------------------------------------------------------ segments
    def finished(self, segment: Segment, frames: int) -> dict | None:
        """The meta of ``segment`` when its folder is complete (``frames`` PNGs), else None."""
        folder = self.root / segment.name
        try:
            meta = json.loads((folder / META).read_text())
        except (OSError, ValueError):
            return None
        return meta if meta.get("frames") == frames == len(list(folder.glob("frame_*.png"))) else None

    def frame_files(self, segment: Segment) -> list[Path]:
        return sorted((self.root / segment.name).glob("frame_*.png"))

    def partial_counts(self) -> dict[str, dict[str, int]]:
        """``{segment name: {attempt id: frames written so far}}`` of the partial folders now present."""
        counts: dict[str, dict[str, int]] = {}
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return counts
        for entry in entries:
            if entry.name.startswith(".seg-") and entry.name.endswith(_PARTIAL):
                name, attempt = entry.name[1:-len(_PARTIAL)].rsplit(".", 1)
                try:
                    n = sum(1 for f in os.scandir(entry.path) if f.name.endswith(".png"))
                except OSError:  # renamed or removed meanwhile
                    continue
                counts.setdefault(name, {})[attempt] = n
        return counts

    def remove(self) -> None:
        """Delete the job folder: renamed away first (one atomic step), so an interruption while the files
        go leaves no half job under the job's name; :meth:`acquire` deletes such leftovers."""
        trash = self.root.with_name(f"{self.root.name}{_REMOVING}{uuid.uuid4().hex[:8]}")
        try:
            os.replace(self.root, trash)
        except OSError:
            trash = self.root
        self.release()
        shutil.rmtree(trash, ignore_errors=True)


class SegmentWriter:
    """Lossless PNG frames of one segment attempt, renamed to the finished name on :meth:`commit`."""

    def __init__(self, job_root, segment: Segment):
        self.final = Path(job_root) / segment.name
        self.attempt = uuid.uuid4().hex[:12]
        self.tmp = Path(job_root) / f".{segment.name}.{self.attempt}{_PARTIAL}"
        self.tmp.mkdir()
        self.count = 0

    def write(self, frame) -> None:
        import cv2

        ok, png = cv2.imencode(".png", frame[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])  # RGB -> BGR
        if not ok:
            raise InputError(f"OpenCV could not encode frame {self.count} of {self.final.name} as PNG")
        with open(self.tmp / f"frame_{self.count:06d}.png", "wb") as f:
            f.write(png.data)
        self.count += 1

    def commit(self, meta: dict) -> None:
        """Write ``meta`` and rename; if another attempt finished this segment first, keep that one."""
        JobDir._write_json(self.tmp / META, {**meta, "frames": self.count})
        try:
            os.replace(self.tmp, self.final)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            self.abort()

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

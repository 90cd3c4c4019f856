"""Console progress of a distributed run: one line on stderr, and the summary at the end."""
from __future__ import annotations

import sys
import time

from .driver import JobSummary, Status


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on (ETAs and totals here and in the CLI's progress bar)."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def status_line(st: Status) -> str:
    """``[####....] 120/480 frames  3/10 segments  4.10 frames/s  ETA 1:27  retried 1``.

    frames/s: frames made by this run (those of segments resumed from an earlier run excluded, frames
    of segments still running included) per second since the tasks were handed out."""
    made = st.frames_done - st.frames_reused
    rate = made / st.elapsed if st.elapsed > 0 else 0.0
    left = max(st.frames_total - st.frames_done, 0)
    eta = clock(left / rate) if rate > 0 else "?"
    width = 24
    fill = int(width * st.frames_done / st.frames_total) if st.frames_total else 0
    resumed = f" ({st.segments_reused} resumed)" if st.segments_reused else ""
    parts = [f"[{'#' * fill}{'.' * (width - fill)}] {st.frames_done}/{st.frames_total} frames",
             f"{st.segments_done}/{st.segments_total} segments{resumed}", f"{rate:.2f} frames/s", f"ETA {eta}"]
    if st.retried:
        parts.append(f"retried {st.retried}")
    if st.phase and st.phase != "interpolating":
        parts.append(st.phase)
    return "  ".join(parts)


class JobProgress:
    """``progress(status)`` for :func:`.driver.interpolate_many`: one stderr line, redrawn at most every
    ``min_interval`` seconds."""

    def __init__(self, stream=None, *, min_interval: float = 0.5):
        self.stream, self.min_interval, self.last = stream or sys.stderr, min_interval, 0.0

    def __call__(self, st: Status) -> None:
        now = time.perf_counter()
        if now - self.last < self.min_interval and st.frames_done != st.frames_total:
            return
        self.last = now
        self.stream.write("\r" + status_line(st) + " " * 4)
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def summary_lines(summaries: list[JobSummary], seconds: float) -> list[str]:
    """One line per output, and a total for a batch."""
    lines = []
    for s in summaries:
        retried = f", {s.retried} retried" if s.retried else ""
        how = f"{s.segments} segments ({s.computed} computed, {s.reused} resumed{retried})"
        lines.append(f"wrote {s.output}: {s.frames_in} -> {s.frames_out} frames, {float(s.fps_in):g} -> "
                     f"{float(s.fps_out):g} fps, {how}")
        if s.cuts:
            where = ", ".join(f"frames {i}|{i + 1}" for i in s.cuts)
            lines.append(f"  scene cuts (frames repeated, not blended): {where}")
    frames = sum(s.frames_out for s in summaries)
    lines.append(f"done: {len(summaries)} output(s), {frames} frames in {clock(seconds)} "
                 f"({frames / seconds if seconds > 0 else 0:.2f} frames/s)")
    return lines

"""What a video file holds: size, exact frame rate from the container's timestamps, frame count,
audio, and what the pipeline cannot keep as it is (alpha, bit depth) or must carry (pixel aspect).

The frame rate and count come from the packets' timestamps (demux only, no decoding). A packet
without a presentation time (AVI stores B-frames so: only decode times) is placed at its decode
time, and an empty packet (an AVI "null frame": the previous picture repeats) is a frame slot too:
the reader holds the previous frame there, so the clip keeps its length and stays with its audio.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from .process import ffmpeg_exe, run

# Packet timestamps are read (demux only, no decoding) over this much of the start of a file to
# detect a variable frame rate and count frames; reading packets costs about as much as copying
# the file, so long files are sampled rather than read whole at every probe.
TIMING_SCAN_SECONDS = 300.0
_REORDER_DEPTH = 16  # most frames a decoder may hold back to reorder (H.264/HEVC DPB size)
_NO_TIMESTAMP = -(2 ** 63)  # AV_NOPTS_VALUE in ffmpeg's framecrc lines
# At most this share of a clip's slots may be missing for it to count as a constant-rate clip with
# dropped frames (held); more gaps than that is a variable-rate clip (re-timed to its average rate).
_MAX_DROPPED = 0.25


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about an input: size, exact frame rate, audio, timing caveats."""

    width: int
    height: int
    fps: Fraction
    frame_count: int | None  # counted or estimated from the duration (exact for frame folders); None if unknown
    audio_codec: str | None  # None when there is no audio stream
    variable_rate: bool = False  # irregular timestamps: frames are re-timed to the constant ``fps``
    drift: float = 0.0  # seconds: the largest gap between a frame's source time and its time at ``fps``
    duration: float | None = None  # seconds, as the container declares it
    truncated: bool = False  # the data ends well before the declared duration (cut-off download or copy)
    frame_count_exact: bool = False  # frame_count counted from the packets (whole file scanned)
    timing_complete: bool = False  # the timestamp scan covered the whole file (drift is not a sample)
    held_frames: int = 0  # empty packets (AVI null frames): the reader repeats the previous picture there
    pixel_format: str | None = None  # the decoder's, e.g. yuv420p, yuva444p10le
    sample_aspect: Fraction | None = None  # SAR (pixel width / height) when not square

    @property
    def has_alpha(self) -> bool:
        fmt = self.pixel_format or ""
        return bool(re.match(r"(yuva|rgba|bgra|argb|abgr|gbrap|ya\d|pal8)", fmt))

    @property
    def bit_depth(self) -> int:
        """Bits per sample: 10 for yuv420p10le, 16 for gray16le and the packed rgb48le / rgba64le."""
        m = re.search(r"(\d+)(?:le|be)$", self.pixel_format or "")
        bits = {48: 16, 64: 16}.get(int(m.group(1)), int(m.group(1))) if m else 8
        return bits if bits > 8 else 8


def _as_fraction(fps: float) -> Fraction:
    """Recover exact rates such as 30000/1001 from the rounded value ffmpeg prints."""
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    if abs(float(ntsc) - fps) < 0.006 and abs(round(fps) - fps) > 1e-3:
        return ntsc
    return Fraction(fps).limit_denominator(1001)


def _fields(desc: str) -> list[str]:
    """Split an ffmpeg stream description at top-level commas ('yuv420p(tv, bt709)' stays whole)."""
    fields, depth, cur = [], 0, []
    for ch in desc:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            fields.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur).strip())
    return fields


def _declared_rate(desc: str) -> Fraction | None:
    """``fps`` (average rate) of a stream description, else ``tbr`` (ffmpeg's guess of the base rate)."""
    rates = {}
    for field in _fields(desc):
        m = re.match(r"(\d+(?:\.\d+)?)(k?) (fps|tbr)\b", field)
        if m and float(m.group(1)) > 0:
            rates.setdefault(m.group(3), float(m.group(1)) * (1000 if m.group(2) else 1))
    rate = rates.get("fps") or rates.get("tbr")
    return _as_fraction(rate) if rate else None


@dataclass
class _Timing:
    video_pts: list[float]  # seconds, sorted (presentation order)
    last_duration: float  # of the last video frame (0 if unknown)
    end: float  # end of the last packet of any scanned stream, seconds
    start: float
    empty: int = 0  # video packets without data (null frames)


def _scan_timing(path: Path) -> _Timing | None:
    """Packet timestamps of the first video stream and the audio, without decoding (ffmpeg framecrc)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path), "-map", "0:V:0",
           "-map", "0:a?", "-c", "copy", "-t", f"{TIMING_SCAN_SECONDS:g}", "-f", "framecrc", "-"]
    proc = run(cmd)
    tb: dict[int, Fraction] = {}
    video: dict[float, float] = {}
    end, start, empty = 0.0, math.inf, 0
    for line in proc.stdout.splitlines():
        if line.startswith("#tb "):
            m = re.match(r"#tb (\d+): (\d+)/(\d+)", line)
            if m:
                tb[int(m.group(1))] = Fraction(int(m.group(2)), int(m.group(3)))
            continue
        parts = line.split(",")
        if line.startswith("#") or len(parts) < 5:
            continue
        try:
            index, dts, pts, duration, size = (int(p) for p in parts[:5])
        except ValueError:
            continue
        if pts == _NO_TIMESTAMP:  # AVI keeps only decode times (B-frames): a frame's slot is its decode time
            pts = dts
        if index not in tb or pts == _NO_TIMESTAMP:  # no timestamp at all
            continue
        t, d = float(pts * tb[index]), float(max(duration, 0) * tb[index])
        start, end = min(start, t), max(end, t + d)
        if index == 0:
            video[t] = d
            empty += size == 0
    if len(video) < 2:
        return None
    pts = sorted(video)
    return _Timing(pts, video[pts[-1]], end, start, empty)


def _grid_slots(pts: list[float], fps: Fraction | None) -> int | None:
    """The frame slots from the first timestamp to the last at ``fps`` when every timestamp sits on
    that grid (to 1 % of a frame), else None."""
    if fps is None:
        return None
    steps = [(t - pts[0]) * float(fps) for t in pts]
    if any(abs(step - round(step)) > 0.01 for step in steps):
        return None
    return round(steps[-1]) + 1


def _drift(pts: list[float], fps: Fraction) -> float:
    """Largest gap between each frame's source time and its slot ``i / fps`` at a constant rate."""
    t0, step = pts[0], 1.0 / float(fps)
    return max(abs((t - t0) - i * step) for i, t in enumerate(pts))


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, frame count, audio and timing caveats of a video file.

    The size is that of the first decoded frame (``#dimensions`` of ffmpeg's framecrc output), so it
    is exactly what :class:`VideoReader` delivers (rotation applied) for any size, 1x1 included, and
    never mistaken for a codec tag such as ``0x31637661``. Rate, duration and audio come from
    ffmpeg's stream summary; packet timestamps (:data:`TIMING_SCAN_SECONDS`, demux only) detect a
    variable frame rate, count the frames and notice a file that ends before its declared length.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input video not found: {path}")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-i", str(path), "-map", "0:V:0",
           "-frames:v", "1", "-c:v", "rawvideo", "-pix_fmt", "rgb24", "-f", "framecrc", "-"]
    proc = run(cmd)
    # Only the input summary: the output section repeats stream lines for the rawvideo stream.
    text = re.split(r"\n(?:Stream mapping:|Output #0)", proc.stderr)[0]
    videos = [m.group(1) for m in re.finditer(r"Stream #\S+.*?: Video: (.*)", text)
              if "(attached pic)" not in m.group(1)]  # cover art is not the video
    if not videos:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"
        raise InputError(f"cannot read {path} as a video (ffmpeg found no video stream): {last}")
    size = re.search(r"^#dimensions 0: (\d+)x(\d+)$", proc.stdout, re.M)
    if proc.returncode != 0 or size is None:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise InputError(f"cannot read size/frame rate of {path}: ffmpeg could not decode its first frame: {tail}")
    width, height = int(size.group(1)), int(size.group(2))
    fps = _declared_rate(videos[0])
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None
    m = re.search(r"start: (-?\d+(?:\.\d+)?)", text)
    file_start = float(m.group(1)) if m else None
    audio = re.search(r"Stream #\S+.*?: Audio: (\w+)", text)
    fields = _fields(videos[0])
    pixel_format = fields[1].split("(")[0].strip() if len(fields) > 1 else None
    sar = re.search(r"\[?SAR (\d+):(\d+)", videos[0])
    sample_aspect = Fraction(int(sar.group(1)), int(sar.group(2))) if sar and int(sar.group(2)) else None

    timing = _scan_timing(path)
    variable, drift, truncated, complete, count, exact, held = False, 0.0, False, False, None, False, 0
    if timing is not None:
        start = file_start if file_start is not None else timing.start
        complete = timing.end - start < TIMING_SCAN_SECONDS - 1
        pts = timing.video_pts
        n = len(pts)
        span = pts[-1] - pts[0] + (timing.last_duration or (pts[-1] - pts[0]) / (n - 1))  # n frame slots
        average = _as_fraction(round(n / span, 3))
        fps = fps or average
        if complete and duration is not None:
            # Every stream ends early only when the data is missing, not when audio outlasts video.
            truncated = duration - (timing.end - start) > max(0.25, 3 / float(fps))
        if complete and not truncated:
            count, exact, held = n, True, timing.empty
            slots = _grid_slots(pts, fps)
            if slots is not None and slots > n and (slots - n) <= _MAX_DROPPED * slots:
                # A constant-rate clip with dropped frames (every timestamp on the declared rate's grid):
                # the previous frame is held in each empty slot, so nothing drifts.
                count, held = slots, held + slots - n
        else:
            # Where the packets stop (cut-off file, end of the scan) frames reordered for B-frames
            # leave holes among the last timestamps: judge the timing without them.
            pts = pts[:-_REORDER_DEPTH] if n > 2 * _REORDER_DEPTH else []
        if pts and not held:
            drift = _drift(pts, fps)
            if drift > 1.0 / float(fps) and average != fps:
                # The declared rate misses the timestamps by more than a frame: re-time to the measured
                # average instead, so the clip keeps its length and ends together with its audio.
                fps, drift = average, _drift(pts, average)
            variable = drift > 0.5 / float(fps)
    if fps is None:
        raise InputError(f"cannot read the frame rate of {path} from ffmpeg: {videos[0].strip()}; "
                         "give it explicitly (input fps)")
    if count is None and duration is not None:
        count = max(1, round(duration * float(fps)))
    return VideoInfo(width, height, fps, count, audio.group(1) if audio else None, variable_rate=variable,
                     drift=drift if variable else 0.0, duration=duration, truncated=truncated,
                     frame_count_exact=exact, timing_complete=complete, held_frames=held,
                     pixel_format=pixel_format, sample_aspect=sample_aspect if sample_aspect != 1 else None)


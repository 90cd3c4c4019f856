"""The pre-pass and the per-segment reader: a segment's frames are exactly those of a sequential read."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pervfi_core.distributed.reader import read_segment
from pervfi_core.distributed.scan import scan_input
from pervfi_core.distributed.segments import Segment, plan_segments
from pervfi_core.errors import InputError
from pervfi_core.video import open_input


@pytest.fixture(scope="module")
def long_frames(long_clip):
    return [f.copy() for f in open_input(long_clip)]


def test_scan_counts_frames_and_finds_the_cut(cut_clip, long_clip):
    scan = scan_input(cut_clip, threshold=0.2)
    assert scan.n_frames == 40 and scan.cuts == [19] and scan.seekable
    assert len(scan.pts) == len(scan.checksums) == 40
    long = scan_input(long_clip, threshold=0.2)
    assert long.n_frames == 120 and long.seekable
    assert long.cuts == []  # the loop back to the first frame keeps the palette: no cut (pipeline/scenes.py)


@pytest.mark.parametrize("start,stop", [(0, 9), (37, 61), (100, 119)])
def test_seeking_read_equals_sequential_read(long_clip, long_frames, start, stop):
    scan = scan_input(long_clip, threshold=0)
    got = list(read_segment(long_clip, Segment(0, start, stop, stop == 119), scan))
    assert len(got) == stop - start + 1
    assert all(np.array_equal(a, b) for a, b in zip(got, long_frames[start:stop + 1]))


def test_a_seek_that_misses_falls_back_to_decoding_from_the_start(long_clip, long_frames):
    scan = scan_input(long_clip, threshold=0)
    pts = list(scan.pts)
    pts[60] = pts[58]  # the seek lands two frames early; the checksums say so, the sequential read takes over
    got = list(read_segment(long_clip, Segment(0, 60, 70, False), dataclasses.replace(scan, pts=pts)))
    assert len(got) == 11 and all(np.array_equal(a, b) for a, b in zip(got, long_frames[60:71]))


def test_an_input_changed_since_the_scan_is_an_error(long_clip):
    scan = scan_input(long_clip, threshold=0)
    wrong = list(scan.checksums)
    wrong[3] = "00000000"
    with pytest.raises(InputError, match="changed since"):
        list(read_segment(long_clip, Segment(0, 0, 9, False), dataclasses.replace(scan, checksums=wrong)))


def test_frame_folder_segments(tmp_path, long_frames):
    import cv2

    for i, frame in enumerate(long_frames[:30]):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), frame[:, :, ::-1])  # natural order: f2 before f10
    scan = scan_input(tmp_path, threshold=0.2)
    assert scan.n_frames == 30 and not scan.seekable
    for seg in plan_segments(30, 8):
        got = list(read_segment(tmp_path, seg, scan))
        assert all(np.array_equal(a, b) for a, b in zip(got, long_frames[seg.start:seg.stop + 1]))
    (tmp_path / "f29.png").unlink()  # the input changed after the scan: a clear error, not a short segment
    with pytest.raises(InputError, match="expected frames 22..29"):
        list(read_segment(tmp_path, Segment(3, 22, 29, True), scan))


def test_a_file_that_is_not_a_video_is_refused_before_any_work(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 100)
    with pytest.raises(InputError):
        scan_input(bad, threshold=0.2)


def test_a_clip_with_dropped_frames_is_counted_and_read_as_a_local_run_reads_it(tmp_path, caplog):
    """Null or dropped frames hold the previous picture (video.slot_filters): the pre-pass counts those slots
    as the local reader does, and segments concatenate to exactly its frames (it used to count 48 of 50)."""
    import logging

    from testkit.clips import dropped_frames_avi

    src = dropped_frames_avi(tmp_path / "dropped.avi", frames=48)  # 48 pictures over 50 slots of 1/25 s
    local = [f.copy() for f in open_input(src)]
    with caplog.at_level(logging.WARNING):
        scan = scan_input(src, threshold=0)
    assert scan.n_frames == len(local) == 50 and caplog.records == []  # and no "cut short" warning
    assert not scan.seekable  # the held pictures' timestamps are the filter's: read from the start
    segments = plan_segments(scan.n_frames, 20)
    got: list = []
    for seg in segments:
        frames = list(read_segment(src, seg, scan))
        assert all(np.array_equal(a, b) for a, b in zip(frames, local[seg.start:seg.stop + 1], strict=True))
        got += frames if not got else frames[1:]  # segments overlap by one frame
    assert len(got) == 50

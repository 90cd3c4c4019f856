"""The job folder: only complete segments count, a changed input or setting starts afresh, one driver."""
from __future__ import annotations

import numpy as np
import pytest

from pervfi_core.distributed.jobs import JobDir, SegmentWriter, default_job_dir
from pervfi_core.distributed.segments import Segment
from pervfi_core.errors import InputError

SEG = Segment(0, 0, 4, False)
FRAME = np.zeros((8, 8, 3), np.uint8)


def _write(job: JobDir, seg: Segment, n: int, *, commit: bool = True) -> SegmentWriter:
    writer = SegmentWriter(job.root, seg)
    for _ in range(n):
        writer.write(FRAME)
    if commit:
        writer.commit({"cuts": []})
    return writer


def test_only_a_committed_segment_with_all_frames_is_finished(tmp_path):
    job = JobDir(default_job_dir(tmp_path / "out.mp4"))
    job.acquire()
    assert job.start({"a": 1}, {}) is False
    partial = _write(job, SEG, 5, commit=False)  # a worker killed before the rename
    assert job.finished(SEG, 5) is None
    assert job.partial_counts() == {SEG.name: {partial.attempt: 5}}
    _write(job, SEG, 5)
    assert job.finished(SEG, 5)["frames"] == 5
    assert job.finished(SEG, 6) is None  # planned otherwise: not this segment
    other = Segment(1, 4, 8, True)
    _write(job, other, 3).abort()
    assert job.finished(other, 3) is not None  # abort after commit removes only the partial folder


def test_resume_keeps_segments_and_other_settings_start_afresh(tmp_path):
    job = JobDir(tmp_path / "job")
    job.acquire()
    job.start({"input": 1, "tau": 0.3}, {})
    _write(job, SEG, 5)
    _write(job, Segment(1, 4, 8, True), 2, commit=False)
    job.release()
    again = JobDir(tmp_path / "job")
    again.acquire()
    assert again.start({"input": 1, "tau": 0.3}, {}) is True
    assert again.finished(SEG, 5) and again.partial_counts() == {}  # stale partial attempts removed
    assert again.start({"input": 1, "tau": 0.5}, {}) is False
    assert again.finished(SEG, 5) is None and again.manifest()["identity"] == {"input": 1, "tau": 0.5}
    again.remove()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "job.removing-1234").mkdir()  # a removal that was interrupted: cleaned up by the next run
    JobDir(tmp_path / "job").acquire()
    assert [p.name for p in tmp_path.iterdir()] == ["job"]


def test_a_second_driver_on_the_same_job_is_refused(tmp_path):
    first, second = JobDir(tmp_path / "job"), JobDir(tmp_path / "job")
    first.acquire()
    with pytest.raises(InputError, match="another run"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()

"""The driver: plan each input, hand its segments to Ray, follow them, assemble each output.

For every input: the job folder (:mod:`.jobs`) is locked and checked; the pre-pass (:mod:`.scan`) and
the plan (:mod:`.segments`) are made, or read back from the manifest on a re-run; every segment not
yet finished becomes one Ray task (:mod:`.ray_runner`). Segments of all inputs share the cluster, so
a batch keeps every worker busy. When an input's last segment is in, its output is assembled
(:mod:`.concat`) and its job folder removed. A failed segment or Ctrl-C cancels the tasks still
running and keeps every finished segment: the same command continues from them.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

from ..errors import InputError, PerVFIError
from ..pipeline.options import DEFAULT_SCENE_THRESHOLD, Options
from . import ray_runner
from .concat import assemble
from .jobs import JobDir, default_job_dir
from .scan import Scan, input_identity, scan_input
from .segments import Segment, auto_segment_frames, check_segment_frames, output_counts, plan_segments
from .worker import EngineSpec, SegmentTask, make_schedule

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Settings:
    """How every input of a run is interpolated and cut (``segment_frames`` None: chosen per input)."""

    engine: EngineSpec = EngineSpec()
    options: Options = Options()
    multiplier: int | None = None
    fps: float | None = None
    input_fps: float | None = None
    segment_frames: int | None = None
    max_retries: int = ray_runner.DEFAULT_MAX_RETRIES
    crf: int = 16
    overwrite: bool = False

    def __post_init__(self):
        if self.segment_frames is not None:
            check_segment_frames(self.segment_frames)
        if self.multiplier is not None and self.fps is not None:
            raise InputError("give either a multiplier or a target frame rate (fps), not both")


@dataclass
class Status:
    """The whole run as progress sees it (frames are output frames)."""

    frames_done: int = 0
    frames_total: int = 0
    frames_computed: int = 0  # in segments finished by this run
    frames_reused: int = 0  # in segments finished by an earlier run
    segments_done: int = 0
    segments_total: int = 0
    segments_reused: int = 0
    retried: int = 0  # attempts lost (worker or node died) and run again
    elapsed: float = 0.0
    phase: str = ""


@dataclass
class JobSummary:
    input: Path
    output: Path
    frames_in: int
    frames_out: int
    fps_in: Fraction
    fps_out: Fraction
    segments: int
    computed: int  # segments made by this run
    reused: int  # finished by an earlier run
    retried: int
    cuts: list[int] = field(default_factory=list)
    seconds: float = 0.0
    engine_loads: int = 0  # tasks of this run that had to load the engine (the others found it loaded)


class _Job:
    """One input on its way to its output."""

    def __init__(self, source, output, job_dir, settings: Settings):
        self.input, self.output = Path(source), Path(output)
        self.dir = JobDir(job_dir or default_job_dir(self.output))
        self.settings = settings
        self.scan: Scan | None = None
        self.segments: list[Segment] = []
        self.counts: list[int] = []
        self.done: dict[int, dict] = {}  # segment index -> meta
        self.reused = self.reused_frames = 0
        self.attempts: dict[str, set[str]] = {}  # segment name -> attempt ids seen
        self.assembled: JobSummary | None = None
        self.engine_loads = 0

    @property
    def label(self) -> str:
        return self.input.name

    def retried(self) -> int:
        return sum(max(0, len(ids) - 1) for ids in self.attempts.values())


def check_request(source, output, settings: Settings) -> None:
    """Fail before any work: a missing input, an output that is the input or in the way, a folder that
    cannot be written, a bad crf (:func:`pervfi_core.video.check_output`)."""
    from ..video import check_output

    if not Path(source).exists():
        raise InputError(f"input not found: {source} (expected a video file or a folder of frames)")
    check_output(output, input_path=source, overwrite=settings.overwrite, crf=settings.crf)


def interpolate_distributed(source, output, *, settings: Settings, cluster, job_dir=None,
                            progress: Callable[[Status], None] | None = None) -> JobSummary:
    """One input to one output on a Ray cluster (:func:`interpolate_many` with one pair)."""
    return interpolate_many([(source, output, job_dir)], settings=settings, cluster=cluster, progress=progress)[0]


def interpolate_many(requests, *, settings: Settings, cluster, progress: Callable[[Status], None] | None = None
                     ) -> list[JobSummary]:
    """``requests``: ``(input, output)`` or ``(input, output, job_dir)`` tuples. The output of each is
    frame for frame that of a single-process ``interpolate_file`` with the same settings. Raises
    InputError for bad input, :class:`~.ray_runner.DistributedError` when a segment cannot be made;
    KeyboardInterrupt passes through after the running tasks are cancelled."""
    for request in requests:
        check_request(request[0], request[1], settings)
    engine, gpus = ray_runner.resolve_engine(cluster, settings.engine)
    settings = dataclasses.replace(settings, engine=engine)
    parallel = ray_runner.slots(cluster, engine, gpus)
    jobs = [_Job(*request[:2], request[2] if len(request) > 2 else None, settings) for request in requests]
    remote = ray_runner.segment_remote(cluster, engine, gpus, max_retries=settings.max_retries)
    run = _Run(cluster.ray, remote, progress)
    try:
        for job in jobs:  # the first input's segments start while the next one is scanned
            _prepare(job, parallel)
            run.submit(job)
        run.follow()
    except BaseException as err:
        run.cancel()
        if isinstance(err, KeyboardInterrupt):  # for the message: what is complete, what a re-run starts from
            err.segments_kept = {str(job.dir.root): len(job.done) for job in jobs
                                 if job.assembled is None and job.dir.root.exists()}
            written = [str(job.output) for job in jobs if job.assembled is not None]
            if written:
                err.output_kept = ", ".join(written)
        raise
    finally:
        for job in jobs:
            job.dir.release()
    return [job.assembled for job in jobs]


def _identity(job: _Job) -> dict:
    """What decides the frames: the input as it is on disk and every frame-deciding setting."""
    s = job.settings
    return {"input": input_identity(job.input), "engine": dataclasses.asdict(s.engine),
            "options": dataclasses.asdict(s.options), "multiplier": s.multiplier, "fps": s.fps,
            "input_fps": s.input_fps}


def _prepare(job: _Job, parallel: int) -> None:
    """Lock the job folder, read back or make the scan and the plan, note the finished segments."""
    s = job.settings
    job.dir.acquire()
    resumed = job.dir.start(_identity(job), {"input": str(job.input), "output": str(job.output)})
    manifest = job.dir.manifest() or {}
    if resumed and "scan" in manifest:
        job.scan = Scan.from_json(manifest["scan"])
    else:
        # with scene detection off, cuts still make good boundaries (they never change the output)
        threshold = s.options.scene_threshold or DEFAULT_SCENE_THRESHOLD
        job.scan = scan_input(job.input, fps=s.input_fps, threshold=threshold)
        job.dir.update(scan=job.scan.to_json())
    n = job.scan.n_frames
    # an explicit length, else the one of the run being resumed (same segments), else one for this cluster
    frames = s.segment_frames or (manifest.get("segment_frames") if resumed else None) \
        or auto_segment_frames(n, parallel)
    job.segments = plan_segments(n, frames, job.scan.cuts)
    job.dir.update(segment_frames=frames, plan=[[g.start, g.stop] for g in job.segments])
    schedule = make_schedule(s.multiplier, s.fps, job.scan.fps)
    job.counts = output_counts(job.segments, schedule, n)
    for seg, count in zip(job.segments, job.counts):
        meta = job.dir.finished(seg, count)
        if meta is not None:
            job.done[seg.index] = meta
    job.reused = len(job.done)
    job.reused_frames = sum(job.counts[i] for i in job.done)
    logger.info("%s: %d frames, %d segments of up to %d frames (%d finished before), cuts at %s", job.label, n,
                len(job.segments), frames, job.reused, job.scan.cuts)


class _Run:
    """The tasks in flight and what progress sees."""

    def __init__(self, ray, remote, progress):
        self.ray, self.remote, self.progress = ray, remote, progress
        self.jobs: list[_Job] = []
        self.pending: dict = {}  # ObjectRef -> (job, segment)
        self.status = Status(phase="interpolating")
        self.start = time.perf_counter()

    def submit(self, job: _Job) -> None:
        """One task per unfinished segment of ``job``."""
        self.jobs.append(job)
        self.status.frames_total += sum(job.counts)
        self.status.segments_total += len(job.segments)
        todo = [g for g in job.segments if g.index not in job.done]
        scan_ref = self.ray.put(job.scan) if todo else None  # once per input, not once per task
        s = job.settings
        for seg in todo:
            task = SegmentTask(str(job.input.resolve()), str(job.dir.root.resolve()), seg, job.counts[seg.index],
                               s.engine, s.options, s.multiplier, s.fps, s.input_fps, job.label)
            self.pending[self.remote.remote(task, scan_ref)] = (job, seg)

    def follow(self) -> None:
        """Until every output is written: collect finished segments, assemble complete inputs, report."""
        while True:
            _report(self.jobs, self.status, self.start, self.progress)
            _assemble_ready(self.jobs, self.status, self.start, self.progress)
            if not self.pending:
                return
            ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=POLL_SECONDS)
            for ref in ready:
                job, seg = self.pending.pop(ref)
                try:
                    result = self.ray.get(ref)
                except Exception as err:  # noqa: BLE001 — classified and re-raised with what to do
                    raise _segment_error(self.ray, job, seg, err) from None
                job.done[seg.index] = {"frames": result.frames, "cuts": result.cuts, "seconds": result.seconds}
                job.attempts.setdefault(seg.name, set()).add(result.attempt)
                job.engine_loads += result.loaded
                self.status.frames_computed += result.frames

    def cancel(self) -> None:
        """Stop the tasks still running (force: a long segment stops now, not at its end)."""
        for ref in self.pending:
            self.ray.cancel(ref, force=True)
        self.pending.clear()


def _assemble_ready(jobs, status: Status, start: float, progress) -> None:
    for job in jobs:
        if job.assembled is None and len(job.done) == len(job.segments):
            _assemble(job, status, start, progress)


def _report(jobs, status: Status, start: float, progress) -> None:
    running = 0
    for job in jobs:
        if job.assembled is not None or len(job.done) == len(job.segments):
            continue
        finished = {g.name for g in job.segments if g.index in job.done}
        for name, attempts in job.dir.partial_counts().items():
            job.attempts.setdefault(name, set()).update(attempts)
            if name not in finished:
                running += max(attempts.values(), default=0)
    status.segments_done = sum(len(job.done) for job in jobs)
    status.segments_reused = sum(job.reused for job in jobs)
    status.frames_reused = sum(job.reused_frames for job in jobs)
    status.frames_done = sum(sum(job.counts[i] for i in job.done) for job in jobs) + running
    status.retried = sum(job.retried() for job in jobs)
    status.elapsed = time.perf_counter() - start
    if progress is not None:
        progress(status)


def _assemble(job: _Job, status: Status, start: float, progress) -> None:
    status.phase = f"writing {job.output.name}"
    if progress is not None:
        progress(status)
    scan, s = job.scan, job.settings
    fps_out = make_schedule(s.multiplier, s.fps, scan.fps).output_fps(scan.fps)
    frames = assemble(job.dir, job.segments, job.output, width=scan.width, height=scan.height, fps=fps_out,
                      audio_from=job.input if scan.audio_codec else None, audio_codec=scan.audio_codec,
                      overwrite=s.overwrite, crf=s.crf)
    cuts = sorted({c for meta in job.done.values() for c in meta.get("cuts", [])})
    job.assembled = JobSummary(job.input, job.output, scan.n_frames, frames, scan.fps, fps_out, len(job.segments),
                               len(job.segments) - job.reused, job.reused, job.retried(), cuts,
                               time.perf_counter() - start, job.engine_loads)
    job.dir.remove()  # only now: the output is complete under its final name
    status.phase = "interpolating"


def _segment_error(ray, job: _Job, seg: Segment, err: BaseException) -> PerVFIError:
    cause, lost = ray_runner.explain_failure(ray, err)
    where = f"{job.label}: segment {seg.index + 1} of {len(job.segments)} (input frames {seg.start}..{seg.stop})"
    kept = (f"{len(job.done)} finished segment(s) are kept in {job.dir.root}; run the same command again to "
            "compute only the rest")
    if lost:
        return ray_runner.DistributedError(
            f"{where}: its worker was lost {job.settings.max_retries + 1} times ({type(cause).__name__}: "
            f"{str(cause).splitlines()[0] if str(cause) else ''}); {kept}")
    if isinstance(cause, InputError):  # bad input stays bad input (exit status 2)
        return InputError(f"{where}: {cause}. {kept}")
    if isinstance(cause, PerVFIError):
        return ray_runner.DistributedError(f"{where}: {cause}. {kept}")
    return ray_runner.DistributedError(f"{where}: unexpected {type(cause).__name__}: {cause}. {kept}")

"""The command line's distributed part: ``interpolate ... --ray [auto|local|ADDRESS]`` and ``--inputs``.

``pervfi_core/cli.py`` adds these options to ``interpolate`` (:func:`add_arguments`) and hands a run
that uses them to :func:`run`. Nothing here imports Ray until a run asks for it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import InputError
from .segments import DEFAULT_SEGMENT_FRAMES, MIN_SEGMENT_FRAMES

LIST_SUFFIXES = (".txt", ".list", ".lst")


def _count(lo: int, hint: str = ""):
    """An argparse type: a whole number >= ``lo``; ``hint`` (what it counts) joins the error message."""
    what = f"a whole number >= {lo}" + (f" ({hint})" if hint else "")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The distributed and batch options of ``interpolate``."""
    g = p.add_argument_group("many machines (Ray) and many inputs")
    g.add_argument("--ray", nargs="?", const="auto", default=None, metavar="auto|local|ADDRESS",
                   help="interpolate on a Ray cluster, in segments that run in parallel and survive a lost worker: "
                        "auto (the cluster in $RAY_ADDRESS or started by `ray start` here, else one on this "
                        "machine), local (a new one on this machine), or the head's HOST:PORT. Needs "
                        "pip install \"ray[default]\"")
    segment = "input frames per Ray task, neighbours sharing one"
    g.add_argument("--segment-frames", type=_count(MIN_SEGMENT_FRAMES, segment), default=None, metavar="N",
                   help=f"{segment} (default: enough segments for every "
                        f"worker, at most {DEFAULT_SEGMENT_FRAMES}); boundaries move to scene cuts nearby")
    g.add_argument("--task-cpus", type=_count(1), default=1, metavar="N",
                   help="CPUs (torch threads) per Ray task (default 1); a CUDA engine also takes one GPU per task")
    g.add_argument("--max-retries", type=_count(0), default=3, metavar="N",
                   help="times a segment is run again when its worker or node dies (default 3)")
    g.add_argument("--job-dir", default=None, metavar="DIR",
                   help="where finished segments are kept until the output is written (default: "
                        ".<output name>.pervfi-job beside the output; on a filesystem every node shares)")
    g.add_argument("--inputs", action="store_true",
                   help="INPUT is a folder of videos or a text file listing inputs (one per line), OUTPUT a "
                        "folder that receives one output per input")
    g.add_argument("--batch", dest="inputs", action="store_true", help=argparse.SUPPRESS)  # its former name
    g.add_argument("--out-ext", default=".mp4", metavar="EXT",
                   help="with --inputs: container of each output (.mp4 .mkv .mov .webm .avi), or 'frames' for "
                        "folders of PNG frames (default .mp4)")


def wants(args: argparse.Namespace) -> bool:
    """Whether an ``interpolate`` run is distributed or a batch (then :func:`run` does it)."""
    return getattr(args, "ray", None) is not None or any(
        getattr(args, name, None) not in (None, False) for name in ("inputs", "segment_frames", "job_dir"))


def batch_inputs(source) -> list[Path]:
    """The inputs named by ``source``: the videos of a folder (sorted), or the lines of a list file
    (paths relative to the file's folder; blank lines and ``#`` comments skipped)."""
    from ..video import VIDEO_EXTENSIONS

    source = Path(source)
    if source.is_dir():
        videos = sorted(f for f in source.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        if not videos:
            raise InputError(f"--inputs: no videos ({', '.join(VIDEO_EXTENSIONS)}) in {source}; a folder of frames "
                             "is one input: run it without --inputs")
        return videos
    if not source.is_file():
        raise InputError(f"--inputs: {source} not found (expected a folder of videos or a list file)")
    if source.suffix.lower() not in LIST_SUFFIXES:
        raise InputError(f"--inputs: {source} is not a list ({', '.join(LIST_SUFFIXES)}: one video or frame folder "
                         "per line) nor a folder of videos; for one video run without --inputs")
    lines = [line.strip() for line in source.read_text().splitlines()]
    paths = [(source.parent / line) for line in lines if line and not line.startswith("#")]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InputError(f"--inputs: {len(missing)} input(s) listed in {source} not found, e.g. {missing[0]}")
    if not paths:
        raise InputError(f"--inputs: {source} lists no inputs")
    return paths


def batch_outputs(inputs: list[Path], out_dir, ext: str) -> list[Path]:
    """``out_dir/<input name><ext>`` for each input (``ext`` 'frames': a folder); InputError on a name clash."""
    from ..video import VIDEO_EXTENSIONS

    ext = "" if ext.lower() in ("frames", "png", "") else ext if ext.startswith(".") else f".{ext}"
    if ext and ext.lower() not in VIDEO_EXTENSIONS:
        raise InputError(f"--out-ext: expected one of {', '.join(VIDEO_EXTENSIONS)} or 'frames', got {ext!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--inputs: output {out_dir} is a file; give a folder for the outputs")
    outputs = [out_dir / f"{p.stem if p.suffix.lower() in VIDEO_EXTENSIONS else p.name}{ext}" for p in inputs]
    seen: dict[Path, Path] = {}
    for source, out in zip(inputs, outputs):
        if out in seen:
            raise InputError(f"--inputs: {seen[out]} and {source} would both be written to {out}; rename one")
        seen[out] = source
    return outputs


def run(args: argparse.Namespace, options) -> int:
    """Run an ``interpolate`` command that has ``--ray`` or ``--inputs`` with its checked
    :class:`~pervfi_core.pipeline.Options` (pervfi_core/cli.py checks every option first, as for one
    process); prints progress and the summary."""
    from ..pipeline.schedule import check_rate
    from .driver import Settings
    from .worker import EngineSpec

    if args.fps is not None:
        check_rate("fps", args.fps)
    if args.ray is None and (args.segment_frames is not None or args.job_dir is not None):
        raise InputError("--segment-frames and --job-dir need --ray (segments are how a Ray cluster shares the work)")
    if args.inputs:
        inputs = batch_inputs(args.input)
        requests = [(i, o, None) for i, o in zip(inputs, batch_outputs(inputs, args.output, args.out_ext))]
    else:
        requests = [(args.input, args.output, args.job_dir)]
    if args.job_dir is not None and len(requests) > 1:
        raise InputError("--job-dir names the folder of one output; with --inputs every output gets its own")
    settings = Settings(engine=EngineSpec(args.engine, args.flow, args.device, args.dtype, args.task_cpus),
                        options=options, multiplier=args.multiplier, fps=args.fps, input_fps=args.input_fps,
                        segment_frames=args.segment_frames, max_retries=args.max_retries, crf=args.crf,
                        overwrite=args.overwrite)
    start = time.perf_counter()
    if args.ray is None:
        summaries = _run_here(requests, settings, quiet=args.quiet)
    else:
        summaries = _run_on_ray(requests, settings, address=args.ray, quiet=args.quiet)
    from .progress import summary_lines

    for line in summary_lines(summaries, time.perf_counter() - start):
        print(line, file=sys.stderr)
    return 0


def _run_on_ray(requests, settings, *, address: str, quiet: bool):
    from .driver import check_request, interpolate_many
    from .progress import JobProgress
    from .ray_runner import connect

    for source, output, _ in requests:  # before a cluster is started or joined
        check_request(source, output, settings)
    cluster = connect(address, num_cpus=None)
    print(f"Ray cluster: {cluster.address}, {cluster.resources().get('CPU', 0):g} CPUs, "
          f"{cluster.resources().get('GPU', 0):g} GPUs", file=sys.stderr)
    bar = None if quiet else JobProgress()
    try:
        return interpolate_many(requests, settings=settings, cluster=cluster, progress=bar)
    except KeyboardInterrupt as err:
        if bar is not None:
            bar.close()
            bar = None
        for folder, count in getattr(err, "segments_kept", {}).items():
            print(f"{count} finished segment(s) kept in {folder}: run the same command again to continue from "
                  "them", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
        cluster.close()


def _run_here(requests, settings, *, quiet: bool):
    """A batch without Ray: the inputs one after another in this process, the engine loaded once."""
    from ..engines import load_estimator, load_engine, pick_device, pick_dtype
    from ..pipeline import Hooks
    from ..pipeline.loop import interpolate_file
    from .driver import JobSummary, check_request

    for source, output, _ in requests:
        check_request(source, output, settings)
    e = settings.engine
    device = pick_device(e.device)
    dtype = pick_dtype(e.dtype, device)
    model, estimator = load_engine(e.model, device=device, dtype=dtype), load_estimator(e.flow, device=device)
    summaries = []
    for k, (source, output, _) in enumerate(requests):
        if not quiet:
            print(f"[{k + 1}/{len(requests)}] {source}", file=sys.stderr)
        report = interpolate_file(source, output, model, estimator, multiplier=settings.multiplier, fps=settings.fps,
                                  input_fps=settings.input_fps, options=settings.options, hooks=Hooks(device=device,
                                  dtype=dtype), overwrite=settings.overwrite, crf=settings.crf)
        summaries.append(JobSummary(Path(source), Path(output), report.frames_in, report.frames_out, report.fps_in,
                                    report.fps_out, 1, 1, 0, 0, list(report.cuts), report.seconds))
    return summaries

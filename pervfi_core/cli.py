"""Command line: ``python -m pervfi_core interpolate INPUT OUTPUT [options]`` and ``weights ...``.

Exit codes: 0 done; 2 bad input, options or weights (one-line message, no traceback); 130
interrupted (Ctrl-C); 1 unexpected error. No output file exists unless the run completed.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from .errors import PerVFIError
from .pipeline.options import BLEND_MAX_PIXELS, DEFAULT_BATCH, DEFAULT_SCENE_THRESHOLD, DEFAULT_SEED, DEFAULT_TAU, \
    FLOW_MAX_PIXELS


ENGINE_HELP = (
    "blending engine: 'default' (the project's own PerVFI weights, pervfi-own: shipped, offline, deterministic), "
    "'training-free' (no weights, about 15x faster on a CPU, slightly lower quality: PerVFI's asymmetric "
    "blending applied to images), or a PerVFI checkpoint id/path (pervfi-v00: official normalizing-flow "
    "generator, tau/seed matter; pervfi-vb: official fast deterministic decoder)"
)


class ProgressBar:
    """One line on stderr: pairs done, output frames/s, ETA. Called as ``progress(done, total)``."""

    def __init__(self, stream=None, report=None, *, min_interval: float = 0.2):
        self.stream, self.report, self.min_interval = stream or sys.stderr, report, min_interval
        self.start = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if now - self.last < self.min_interval and done != total:
            return
        self.last, elapsed = now, max(now - self.start, 1e-9)
        frames = self.report.frames_out if self.report is not None else done
        rate = f"{frames / elapsed:.2f} frames/s"
        if total:
            total = max(total, done)
            eta = elapsed / done * (total - done) if done else 0.0
            width = 24
            fill = int(width * done / total)
            line = f"[{'#' * fill}{'.' * (width - fill)}] {done}/{total} pairs  {rate}  ETA {_clock(eta)}"
        else:
            line = f"{done} pairs  {rate}"
        self.stream.write("\r" + line + " " * 4)
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 2, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 2 (2 doubles the frame rate), got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_interpolate(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("interpolate", help="make new frames between the frames of a video",
                       description="Interpolate a video (file or folder of frames) into a video file (by "
                                   "extension: .mp4 .mkv .mov .m4v .webm .avi; audio copied) or a folder of PNG "
                                   "frames (a name without extension).")
    p.add_argument("input", help="video file or folder of frames (.png/.jpg...)")
    p.add_argument("output", help="video file (.mp4, .mkv, .mov, .webm, .avi) or folder for numbered PNG frames")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--multiplier", "-m", type=_positive_int, default=None,
                      help="frames per input frame: N-1 new frames between each pair (default 2)")
    rate.add_argument("--fps", type=_positive_float, default=None,
                      help="retime to this frame rate instead (any value, e.g. 24 -> 60)")
    p.add_argument("--tau", type=float, default=DEFAULT_TAU,
                   help=f"sampling temperature of a stochastic engine (pervfi-v00), 0..1 (default {DEFAULT_TAU})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"seed of a stochastic engine; output frame j uses seed+j (default {DEFAULT_SEED})")
    p.add_argument("--model", default="default", help=ENGINE_HELP)
    p.add_argument("--flow", default="auto",
                   help="motion estimator: auto (GMFlow on a GPU, OpenCV DIS on a CPU), dis, gmflow, gmflow-refine, "
                        "raft, raft-small, or a checkpoint id/path (default auto)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                   help="compute precision (default auto = float32)")
    p.add_argument("--input-fps", type=_positive_float, default=None,
                   help="frame rate of a folder of frames (default 25) or override of a video's rate")
    p.add_argument("--scene-threshold", type=float, default=DEFAULT_SCENE_THRESHOLD,
                   help=f"scene-cut sensitivity, 0..1 (default {DEFAULT_SCENE_THRESHOLD}; 0 disables): pairs across a "
                        "cut are never blended, the nearer frame is repeated")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                   help=f"new frames per model call (default {DEFAULT_BATCH})")
    p.add_argument("--blend-max-pixels", "--max-pixels", dest="blend_max_pixels", type=int, default=None,
                   help=f"pixels per blend/decode call (batch x H x W); larger frames are processed in tiles "
                        f"(default: what the engine allows, at most {BLEND_MAX_PIXELS}; a value above what "
                        f"the engine allows is lowered to it, and the log says so)")
    p.add_argument("--flow-max-pixels", type=int, default=FLOW_MAX_PIXELS,
                   help=f"frames above this many pixels get their motion estimated on a downscaled copy "
                        f"(default {FLOW_MAX_PIXELS})")
    p.add_argument("--crf", type=int, default=16, help="video quality, lower is better (x264 CRF, default 16)")
    p.add_argument("--overwrite", "-y", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_interpolate)
    return p


def cmd_interpolate(args: argparse.Namespace) -> int:
    from .engines import load_estimator, load_model, pick_device, pick_dtype
    from .pipeline import Hooks, Options
    from .pipeline.loop import RunReport, interpolate_file
    from .video import open_input, output_kind

    # every option is checked before anything is loaded or read (pipeline/options.py)
    options = Options(tau=args.tau, seed=args.seed, scene_threshold=args.scene_threshold, batch_size=args.batch_size,
                      flow_max_pixels=args.flow_max_pixels, blend_max_pixels=args.blend_max_pixels)
    output_kind(args.output)  # reject unknown extensions before loading anything
    open_input(args.input, fps=args.input_fps).close()  # missing/unreadable input: fail fast
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    model = load_model(args.model, device=device, dtype=dtype)
    estimator = load_estimator(args.flow, device=device)
    report = RunReport()
    bar = None if args.quiet else ProgressBar(report=report)
    hooks = Hooks(device=device, dtype=dtype, progress=bar)
    _info(f"engine: {model.name}; motion: {estimator.name}; device: {device}")
    try:
        report = interpolate_file(args.input, args.output, model, estimator, multiplier=args.multiplier, fps=args.fps,
                                  input_fps=args.input_fps, options=options, hooks=hooks, overwrite=args.overwrite,
                                  crf=args.crf, report=report)
    finally:
        if bar is not None:
            bar.close()
    _info(f"wrote {args.output}: {report.frames_in} -> {report.frames_out} frames, "
          f"{float(report.fps_in):g} -> {float(report.fps_out):g} fps, {report.seconds:.1f} s")
    if report.cuts:
        where = ", ".join(f"frames {i}|{i + 1} ({t:.2f} s)" for i, t in zip(report.cuts, report.cut_times()))
        _info(f"scene cuts (frames repeated, not blended): {where}")
    return 0


def _info(text: str) -> None:
    print(text, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pervfi_core",
                                     description="PerVFI video frame interpolation (CVPR 2024) without ComfyUI.")
    parser.add_argument("--verbose", "-v", action="store_true", help="log details (and tracebacks of unexpected errors)")
    sub = parser.add_subparsers(dest="command", required=True)
    add_interpolate(sub)
    from .train import cli as train_cli
    from .weights import cli as weights_cli

    weights_cli.register(sub)
    train_cli.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from .allocator import tune_malloc

    tune_malloc()  # this process is ours: reuse freed blocks instead of page-faulting them (allocator.py)
    try:
        return int(args.func(args) or 0)
    except PerVFIError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: stopped cleanly, no output written", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 — last resort: a message, the traceback only with -v
        if args.verbose:
            raise
        print(f"error: unexpected {type(err).__name__}: {err} (run with -v for details)", file=sys.stderr)
        return 1

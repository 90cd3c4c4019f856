"""Command line: ``python -m pervfi_core interpolate INPUT OUTPUT [options]`` and ``weights ...``.

Exit codes: 0 done; 2 bad input, options, weights or output (a one-line message, no traceback: a full
disk, a read-only folder, a corrupt checkpoint, a value out of bounds); 130 interrupted (Ctrl-C,
SIGINT); 128 + n for the other stop signals (143 SIGTERM, 129 SIGHUP, 131 SIGQUIT, SIGUSR1/2); 1 unexpected error. No output file exists unless the run completed:
every way of stopping removes the temporary output. Warnings (a cut-off input, a variable frame
rate, half precision on a CPU) go to stderr.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from fractions import Fraction

from . import weights
from .distributed.progress import clock
from .engines import DEFAULT_ENGINE
from .errors import PerVFIError
from .flow.registry import AUTO, AUTO_DESCRIPTION, ESTIMATORS
from .registry import ENGINES
from .pipeline.options import BLEND_MAX_PIXELS, DEFAULT_BATCH, DEFAULT_NOISE, DEFAULT_SCENE_THRESHOLD, DEFAULT_SEED, \
    DEFAULT_TAU, FLOW_MAX_PIXELS, NOISE_MODES
from .pipeline.schedule import MAX_RATE_RATIO, MULTIPLIER_RANGE
from .video import CRF_RANGE, STOP_SIGNALS


def engine_help() -> str:
    """``--engine``'s help, from the registry and the manifest (nothing to keep in step by hand)."""
    downloads = [e.id for e in weights.default_manifest().entries if e.kind == "pervfi" and e.available]
    return (f"frame-making engine (default: {DEFAULT_ENGINE}): {ENGINES.help()}; or a manifest id "
            f"({', '.join(downloads)}: fetched and verified on first use unless shipped) or a checkpoint path")


class ProgressBar:
    """One line on stderr: pairs done, output frames/s, ETA. Called as ``progress(done, total)``.

    ``finish(total)`` draws the final state with the true total (a cut-off input ends short of the
    count it declared); :class:`ConsoleLog` breaks the line before a warning is printed.
    """

    def __init__(self, stream=None, report=None, *, min_interval: float = 0.2):
        self.stream, self.report, self.min_interval = stream or sys.stderr, report, min_interval
        self.start = time.perf_counter()
        self.last = 0.0
        self.dirty = False  # a progress line without its newline is on screen

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
            line = f"[{'#' * fill}{'.' * (width - fill)}] {done}/{total} pairs  {rate}  ETA {clock(eta)}"
        else:
            line = f"{done} pairs  {rate}"
        self.stream.write("\r" + line + " " * 4)
        self.stream.flush()
        self.dirty = True

    def finish(self, total: int) -> None:
        """Draw the last state against ``total``, the pairs the input really had."""
        self.last = 0.0
        self(total, total)

    def break_line(self) -> None:
        if self.dirty:
            self.stream.write("\n")
            self.stream.flush()
            self.dirty = False

    def close(self) -> None:
        self.break_line()


class ConsoleLog(logging.StreamHandler):
    """Log records on stderr (``warning: ...``), each on a line of its own even while a progress bar
    holds the current line."""

    def __init__(self, stream=None, *, verbose: bool = False):
        super().__init__(stream or sys.stderr)
        self.bar: ProgressBar | None = None
        fmt = "%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s"
        self.setFormatter(_LowerLevelFormatter(fmt))

    def emit(self, record: logging.LogRecord) -> None:
        if self.bar is not None:
            self.bar.break_line()
        super().emit(record)


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "levelname": record.levelname.lower()})
        return super().format(record)


def _console_log() -> ConsoleLog | None:
    return next((h for h in logging.getLogger().handlers if isinstance(h, ConsoleLog)), None)


class Interrupted(KeyboardInterrupt):
    """A stop signal (:data:`~pervfi_core.video.STOP_SIGNALS`) raised as KeyboardInterrupt in the main thread, so every
    abort path Ctrl-C takes (the temporary output removed) runs for it too. ``signum``: which one."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class StopOnSignal:
    """While active, the stop signals raise :class:`Interrupted` in the main thread; handlers are restored
    on exit. Only the first signal raises: more of them (a supervisor repeating SIGTERM) must not cut the
    clean-up short. A signal the process was told to ignore (``nohup``: SIGHUP) stays ignored."""

    def __init__(self):
        self.signum: int | None = None
        self._saved: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            raise Interrupted(signum)

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():  # signal.signal works only there
            for name in STOP_SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
                    self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._saved.items():
            signal.signal(sig, previous)
        self._saved.clear()


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _rate(text: str):
    """A frame rate: a number (``29.97``) or an exact ratio ``N/D`` (``30000/1001``), kept exact."""
    if "/" not in text:
        return _number(text)
    try:
        return Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a ratio N/D such as 30000/1001, got {text!r}") from None


def add_interpolate(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("interpolate", help="make new frames between the frames of a video",
                       description="Interpolate a video (file or folder of frames) into a video file (by "
                                   "extension: .mp4 .mkv .mov .m4v .webm .avi; audio copied) or a folder of PNG "
                                   "frames (a name without extension).")
    p.add_argument("input", help="video file or folder of frames (.png/.jpg...)")
    p.add_argument("output", help="video file (.mp4, .mkv, .mov, .webm, .avi) or folder for numbered PNG frames")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--multiplier", "-m", type=_whole, default=None,
                      help=f"frames per input frame: N-1 new frames between each pair, {MULTIPLIER_RANGE[0]} to "
                           f"{MULTIPLIER_RANGE[1]} (default 2)")
    rate.add_argument("--fps", type=_rate, default=None,
                      help=f"retime to this frame rate instead (any value within {MAX_RATE_RATIO}x of the input "
                           "rate, e.g. 24 -> 60; exact ratios as N/D, e.g. 60000/1001)")
    p.add_argument("--tau", type=float, default=DEFAULT_TAU,
                   help=f"sampling temperature of a stochastic engine (the default pervfi-rife, pervfi-v00, pervfi-own-tau), "
                        f"0..1 (default {DEFAULT_TAU})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"seed of a stochastic engine's latent (default {DEFAULT_SEED})")
    p.add_argument("--noise", default=DEFAULT_NOISE, choices=NOISE_MODES,
                   help="latents of successive new frames: 'shared' (the default) decodes every one from the seed's "
                        "latent, steady in static regions; 'per-frame' draws frame j from seed+j (independent "
                        "samples, which flicker at tau > 0)")
    p.add_argument("--engine", "--model", dest="engine", metavar="ENGINE", default="default", help=engine_help())
    p.add_argument("--flow", default=AUTO,
                   help=f"optical-flow estimator (default auto): {AUTO}: {AUTO_DESCRIPTION}; {ESTIMATORS.help()}; "
                        "or a checkpoint id/path")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                   help="compute precision (default auto = float32)")
    p.add_argument("--input-fps", type=_rate, default=None,
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
    p.add_argument("--crf", type=int, default=16,
                   help=f"video quality, lower is better (x264 CRF {CRF_RANGE[0]}..{CRF_RANGE[1]}, default 16)")
    p.add_argument("--overwrite", "-y", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    from .distributed import cli as distributed_cli  # --ray, --segment-frames, --inputs (no Ray imported here)

    distributed_cli.add_arguments(p)
    p.set_defaults(func=cmd_interpolate)
    return p


def cmd_interpolate(args: argparse.Namespace) -> int:
    from .distributed import cli as distributed_cli
    from .pipeline import Options
    from .pipeline.schedule import Retime, check_rate
    from .video import OutputLock, check_output

    # Every option is checked before anything is loaded, by the same code the API and the nodes use
    # (pipeline/options.py, pipeline/schedule.py, video.check_output): a bad value costs a message, not a
    # run — on one machine and on a Ray cluster alike.
    options = Options(tau=args.tau, seed=args.seed, noise=args.noise, scene_threshold=args.scene_threshold,
                      batch_size=args.batch_size, flow_max_pixels=args.flow_max_pixels,
                      blend_max_pixels=args.blend_max_pixels)
    if args.multiplier is not None:
        Retime(multiplier=args.multiplier)
    if args.input_fps is not None:
        check_rate("input fps", args.input_fps)
    if distributed_cli.wants(args):  # --ray (segments on a Ray cluster) or --inputs (many inputs)
        return distributed_cli.run(args, options)
    check_output(args.output, input_path=args.input, overwrite=args.overwrite, crf=args.crf)
    # One writer per output, taken before any work: a second run on this output refuses at once.
    with OutputLock(args.output):
        return _interpolate_locked(args, options)


def _interpolate_locked(args: argparse.Namespace, options) -> int:
    from .engines import load_engine, load_estimator, pick_device, pick_dtype
    from .pipeline import Hooks
    from .pipeline.loop import RunReport, interpolate_file
    from .pipeline.schedule import Retime
    from .video import open_input

    reader = open_input(args.input, fps=args.input_fps)  # missing/unreadable input: fail fast
    reader.close()
    if args.fps is not None:
        Retime(fps_out=args.fps, fps_in=reader.info.fps)  # the target rate against the input's
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    model = load_engine(args.engine, device=device, dtype=dtype)
    # an engine that finds its own motion (pervfi-rife) runs no estimator: none is loaded
    estimator = load_estimator(args.flow, device=device) if model.needs_motion else None
    if estimator is None and args.flow != "auto":
        logging.getLogger("pervfi_core").warning("--flow %s is not used: %s finds its own motion", args.flow, model.name)
    report = RunReport()
    bar = None if args.quiet else ProgressBar(report=report)
    console = _console_log()
    if console is not None:
        console.bar = bar
    hooks = Hooks(device=device, dtype=dtype, progress=bar)
    motion = estimator.name if estimator is not None else "the engine's own"
    _info(f"engine: {model.name}; motion: {motion}; device: {device}")
    before = _identity(args.output)
    try:
        report = interpolate_file(args.input, args.output, model, estimator, multiplier=args.multiplier, fps=args.fps,
                                  input_fps=args.input_fps, options=options, hooks=hooks, overwrite=args.overwrite,
                                  crf=args.crf, report=report)
        args.output_complete = args.output  # from here on a stop signal must not say "no output written"
        if bar is not None and report.frames_in >= 2:
            bar.finish(report.frames_in - 1)  # the true total: a cut-off input ends short of what it declared
    except KeyboardInterrupt as err:
        if _identity(args.output) != before:  # the signal came just after the output was renamed into place
            err.output_kept = args.output
        raise
    finally:
        if bar is not None:
            bar.close()
        if console is not None:
            console.bar = None
    _info(f"wrote {args.output}: {report.frames_in} -> {report.frames_out} frames, "
          f"{float(report.fps_in):g} -> {float(report.fps_out):g} fps, {report.seconds:.1f} s"
          + (f"; {report.kept} kept" if report.kept else ""))
    if report.cuts:
        where = ", ".join(f"frames {i}|{i + 1} ({t:.2f} s)" for i, t in zip(report.cuts, report.cut_times()))
        _info(f"scene cuts (frames repeated, not blended): {where}")
    return 0


def _info(text: str) -> None:
    print(text, file=sys.stderr)


def _identity(path) -> tuple[int, int] | None:
    """(inode, mtime) of an output, to tell a completed output from a previous one or none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def build_parser() -> argparse.ArgumentParser:
    # the console script (pip install .) or the module, whichever the user typed
    prog = "pervfi" if os.path.basename(sys.argv[0] or "") == "pervfi" else "python -m pervfi_core"
    parser = argparse.ArgumentParser(prog=prog,
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
    # Our own handler, removed again on return (main() also runs in-process, e.g. in tests); the
    # library itself never configures logging.
    root = logging.getLogger()
    console, level = ConsoleLog(verbose=args.verbose), root.level
    root.addHandler(console)
    root.setLevel(logging.INFO if args.verbose else logging.WARNING)
    from .allocator import tune_malloc

    tune_malloc()  # this process is ours: reuse freed blocks instead of page-faulting them (allocator.py)
    stop = StopOnSignal()
    try:
        with stop:
            return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        return _interrupted(err, stop.signum, getattr(args, "output_complete", None))
    except PerVFIError as err:
        if stop.signum is not None:  # e.g. ffmpeg, hit by the same signal, failed first: the signal is the cause
            return _interrupted(err, stop.signum, None)
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 — last resort: a message, the traceback only with -v
        if stop.signum is not None:
            return _interrupted(err, stop.signum, None)
        if args.verbose:
            raise
        print(f"error: unexpected {type(err).__name__}: {_one_line(err)} (run with -v for details)", file=sys.stderr)
        return 1
    finally:
        root.removeHandler(console)
        root.setLevel(level)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split("\n"))


def _interrupted(err: BaseException, signum: int | None, complete) -> int:
    """The message and exit status (128 + signal number; 130 for Ctrl-C) of a stopped run. ``complete``:
    the output, if the run had finished it before the signal came (it is whole and stays)."""
    signum = getattr(err, "signum", None) or signum or signal.SIGINT
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    kept = getattr(err, "output_kept", None) or complete
    lead = "\n" if signum == signal.SIGINT else ""  # past the "^C" a terminal echoes
    if kept is not None:
        print(f"{lead}interrupted by {name} after the output was complete: {kept} is kept", file=sys.stderr)
    else:
        print(f"{lead}interrupted by {name}: stopped cleanly, no output written", file=sys.stderr)
    return 128 + int(signum)

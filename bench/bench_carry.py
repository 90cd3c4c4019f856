"""What each output keeps of inputs with alpha or more than 8 bits: the codec and pixel format of every
input x output pair, as ffmpeg reads them back, and the run's own words (warning or "... kept").

    python bench/bench_carry.py [--out bench/results/carry.md]

Inputs are the corpus's tiny clips (tests/testkit/clips.py: qtrle, PNG-in-MOV, ProRes 4444 and 422 HQ,
10-bit H.264 and HEVC) and two PNG folders (RGBA, 16-bit), interpolated x2 by the weight-free engine.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from pervfi_core.cli import main  # noqa: E402
from testkit.cli import output_layout, write_png  # noqa: E402
from testkit.clips import alpha_mov, hevc_10_bit_mkv, png_in_mov, prores_mov, ten_bit_mkv  # noqa: E402
from report import write_report  # noqa: E402

OUTPUTS = ("o.mp4", "o.mov", "o.mkv", "o.webm", "frames")


def inputs(d: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    for name, shape, dtype in (("rgba_png", (24, 32, 4), np.uint8), ("png16", (24, 32, 3), np.uint16)):
        (d / name).mkdir()
        for k in range(3):
            write_png(d / name / f"f{k}.png", rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype))
    return {"qtrle (argb)": alpha_mov(d / "qtrle.mov"), "PNG-in-MOV": png_in_mov(d / "pngmov.mov"),
            "ProRes 4444": prores_mov(d / "p4444.mov", alpha=True), "ProRes 422 HQ": prores_mov(d / "p422.mov"),
            "H.264 10-bit": ten_bit_mkv(d / "h264_10.mkv"), "HEVC 10-bit": hevc_10_bit_mkv(d / "hevc10.mkv"),
            "RGBA PNG frames": d / "rgba_png", "16-bit PNG frames": d / "png16"}


def said(stderr: str) -> str:
    """The run's warnings and what its summary line says was kept, in a few words."""
    words = []
    for line in stderr.splitlines():
        if line.startswith("warning:"):
            words.append("warns: " + ("alpha dropped" if "alpha channel" in line else
                                      "8 bits" if "written with 8 bits" in line else line.split(": ", 2)[-1]))
        elif line.startswith("wrote") and " kept" in line:
            words.append(line.rsplit("; ", 1)[-1])
    return "; ".join(words)


def run(out: Path) -> None:
    rows = ["| input (as decoded) | output | output as decoded | the run says |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, src in inputs(d).items():
            for output in OUTPUTS:
                target = d / f"{src.stem}-{output}"
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    rc = main(["interpolate", str(src), str(target), "--engine", "training-free", "--flow", "dis",
                               "-q"])
                result = output_layout(target) if rc == 0 else f"exit {rc}"
                rows.append(f"| {name} ({output_layout(src)}) | {output} | {result} | {said(err.getvalue())} |")
    write_report(out, ["# What each output keeps of alpha and deep inputs", "",
                       f"Measured {datetime.date.today()} by `python bench/bench_carry.py` (ffmpeg's names; ProRes "
                       "4444 always decodes as 12-bit, its encoder takes 10).", "", *rows])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "carry.md")
    run(parser.parse_args().out)

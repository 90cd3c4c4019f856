"""What of the input the output keeps (pervfi_core/video/carry.py): alpha interpolated beside the colour,
more than 8 bits kept where the output holds them, 8-bit RGB inputs read exactly as before."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from pervfi_core.errors import InputError
from pervfi_core.video import RGB8, FrameFolderReader, FrameFormat, carried, open_input, open_output, probe
from testkit.clips import SAMPLE, hevc_10_bit_mkv, make_clip, moving_square_rgba


def _engine(name: str):
    from pervfi_core.engines import load_engine, load_estimator
    from pervfi_core.errors import PerVFIError

    try:
        engine = load_engine(name, device="cpu")
    except PerVFIError as err:
        pytest.skip(f"{name} unavailable here: {err}")
    return engine, load_estimator("dis", device="cpu") if engine.needs_motion else None


def _read(path, fmt: FrameFormat) -> list[np.ndarray]:
    reader = open_input(path)
    reader.format = fmt
    return [f.copy() for f in reader]


@pytest.mark.parametrize("engine_name", ["training-free", "pervfi-rife"])  # motion given / the engine's own
def test_a_moving_opaque_square_keeps_its_alpha_on_the_colour(tmp_path, engine_name):
    """The square moves 12 px right over a transparent background: the new frame's alpha is one opaque square
    halfway, where its colour is; a time blend of the alphas would leave two half-transparent ghosts."""
    from pervfi_core.pipeline.loop import interpolate_file

    src = moving_square_rgba(tmp_path / "in", frames=3, step=12)  # left edge at 8, 20, 32; 16 px wide
    engine, estimator = _engine(engine_name)
    report = interpolate_file(src, tmp_path / "out", engine, estimator, multiplier=2)
    assert report.kept == "alpha" and report.frames_out == 5
    out = _read(tmp_path / "out", FrameFormat(alpha=True))
    given = _read(src, FrameFormat(alpha=True))
    assert all(np.array_equal(out[2 * k], given[k]) for k in range(3))  # input frames exactly, alpha included
    alpha = out[1][:, :, 3] / 255.0  # halfway between left edges 8 and 20: the square spans x 14..30
    assert alpha[18:30, 16:28].mean() > 0.9  # opaque inside
    assert alpha[16:32, 8:12].mean() < 0.1 and alpha[16:32, 32:36].mean() < 0.1  # no ghost where it was / will be
    assert alpha[:14].max() < 0.02 and alpha[34:].max() < 0.02  # above and below: still transparent
    colour = out[1][:, :, :3].max(axis=2) > 20  # the square's texture is 40..255, the background black
    assert np.mean(colour != (alpha > 0.5)) < 0.03  # alpha and colour cover the same pixels

    # The same frames into an .mkv (FFV1, lossless RGB + alpha) and a .mov (ProRes 4444)
    interpolate_file(src, tmp_path / "o.mkv", engine, estimator, multiplier=2)
    assert probe(tmp_path / "o.mkv").pixel_format == "bgra"
    assert all(np.array_equal(a, b) for a, b in zip(_read(tmp_path / "o.mkv", FrameFormat(alpha=True)), out,
                                                     strict=True))
    interpolate_file(src, tmp_path / "o.mov", engine, estimator, multiplier=2)
    assert probe(tmp_path / "o.mov").has_alpha
    back = _read(tmp_path / "o.mov", FrameFormat(alpha=True))
    assert np.abs(back[1][:, :, 3].astype(int) - out[1][:, :, 3]).max() <= 2  # ProRes: near-lossless alpha


def test_ten_bits_are_kept_not_rounded_to_eight(tmp_path):
    from pervfi_core.pipeline.loop import interpolate_file

    src = hevc_10_bit_mkv(tmp_path / "deep.mkv")
    engine, estimator = _engine("training-free")
    report = interpolate_file(src, tmp_path / "frames", engine, estimator, multiplier=2)
    assert report.kept == "10-bit samples"
    deep = _read(src, FrameFormat(deep=True))
    out = _read(tmp_path / "frames", FrameFormat(deep=True))
    assert out[0].dtype == np.uint16 and all(np.array_equal(out[2 * k], deep[k]) for k in range(4))
    assert np.mean(deep[0] % 257 != 0) > 0.5 and np.mean(out[1] % 257 != 0) > 0.5  # between the 8-bit steps
    shallow = _read(src, RGB8)[0].astype(np.int64) * 257  # the same picture, read with 8 bits
    assert np.abs(shallow - deep[0]).mean() < 257
    interpolate_file(src, tmp_path / "o.mp4", engine, estimator, multiplier=2)
    assert probe(tmp_path / "o.mp4").pixel_format == "yuv420p10le"
    assert np.mean(_read(tmp_path / "o.mp4", FrameFormat(deep=True))[1] % 257 != 0) > 0.5


def test_sixteen_bit_and_rgba_png_frames_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 65536, (17, 23, 4), dtype=np.uint16) for _ in range(3)]
    fmt = FrameFormat(alpha=True, deep=True)
    writer = open_output(tmp_path / "frames", width=23, height=17, fps=Fraction(25), fmt=fmt)
    for frame in frames:
        writer.write(frame)
    writer.close()
    reader = FrameFolderReader(tmp_path / "frames")
    assert reader.info.pixel_format == "rgba64le" and reader.info.has_alpha and reader.info.bit_depth == 16
    reader.format = fmt
    assert all(np.array_equal(a, b) for a, b in zip(reader, frames, strict=True))
    assert [f.shape for f in FrameFolderReader(tmp_path / "frames")] == [(17, 23, 3)] * 3  # by default: 8-bit RGB


def test_eight_bit_rgb_inputs_take_the_path_they_always_took(tmp_path):
    info = probe(SAMPLE)
    for output in ("o.mp4", "o.mov", "o.mkv", "o.webm", "frames"):
        assert carried(info, tmp_path / output) == RGB8
    folder = tmp_path / "rgb"
    folder.mkdir()
    import cv2

    for k, frame in enumerate(_read(make_clip(tmp_path / "c.mp4", frames=3), RGB8)):
        cv2.imwrite(str(folder / f"{k}.png"), frame[:, :, ::-1])
    assert carried(FrameFolderReader(folder).info, tmp_path / "frames") == RGB8


@pytest.mark.parametrize("output", ["o.mp4", "o.webm", "o.avi"])
def test_an_output_is_never_asked_for_what_it_cannot_hold(tmp_path, output):
    with pytest.raises(InputError, match="holds no rgba frames"):
        open_output(tmp_path / output, width=16, height=16, fps=Fraction(25), fmt=FrameFormat(alpha=True))
    assert list(tmp_path.iterdir()) == []

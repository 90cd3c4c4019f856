"""Streaming video I/O: probing, decoding, encoding (fps, audio, odd sizes), frame folders, atomic output."""
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from pervfi_core.errors import InputError
from pervfi_core.video import (FrameFolderReader, VideoReader, open_input, open_output, output_kind, probe)

from testkit.clips import SAMPLE, make_clip


def test_probe_and_read_sample():
    info = probe(SAMPLE)
    assert (info.width, info.height, info.fps, info.audio_codec) == (448, 252, Fraction(25), "aac")
    frames = list(VideoReader(SAMPLE))
    assert len(frames) == 40 and frames[0].shape == (252, 448, 3) and frames[0].dtype == np.uint8


def test_roundtrip_png_folder_is_lossless(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, size=(17, 23, 3), dtype=np.uint8) for _ in range(3)]  # odd size
    w = open_output(tmp_path / "frames", width=23, height=17, fps=Fraction(25))
    for f in frames:
        w.write(f)
    w.close()
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"frame_{k:06d}.png" for k in range(3)]
    back = list(FrameFolderReader(tmp_path / "frames"))
    assert all(np.array_equal(a, b) for a, b in zip(frames, back))


def test_video_writer_fps_odd_size_and_atomic_rename(tmp_path):
    out = tmp_path / "odd.mp4"
    w = open_output(out, width=33, height=19, fps=Fraction(60000, 1001))
    for k in range(5):
        w.write(np.full((19, 33, 3), 40 * k, np.uint8))
        assert not out.exists()  # only the temporary name exists while writing
    w.close()
    info = probe(out)
    assert (info.width, info.height, info.fps) == (33, 19, Fraction(60000, 1001))
    assert len(list(VideoReader(out))) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_overwrite_replaces_only_when_complete(tmp_path):
    old = tmp_path / "out.mp4"
    old.write_bytes(b"previous result")
    w = open_output(old, width=16, height=16, fps=Fraction(25), overwrite=True)
    w.write(np.zeros((16, 16, 3), np.uint8))
    w.abort()
    assert old.read_bytes() == b"previous result"  # a failed run keeps the previous output
    w = open_output(old, width=16, height=16, fps=Fraction(25), overwrite=True)
    w.write(np.zeros((16, 16, 3), np.uint8))
    w.close()
    assert probe(old).width == 16


def test_abort_removes_everything(tmp_path):
    for name in ("a.mp4", "frames"):
        w = open_output(tmp_path / name, width=16, height=16, fps=Fraction(25))
        w.write(np.zeros((16, 16, 3), np.uint8))
        w.abort()
    assert list(tmp_path.iterdir()) == []


def test_audio_is_copied(tmp_path):
    src = make_clip(tmp_path / "with_audio.mp4", frames=10, audio=True)
    info = probe(src)
    assert info.audio_codec == "aac"
    w = open_output(tmp_path / "out.mp4", width=info.width, height=info.height, fps=info.fps * 2,
                    audio_from=src, audio_codec=info.audio_codec)
    for f in VideoReader(src):
        w.write(f)
        w.write(f)
    w.close()
    assert probe(tmp_path / "out.mp4").audio_codec == "aac"
    # into a WebM the AAC track is re-encoded (WebM takes Opus/Vorbis only)
    w = open_output(tmp_path / "out.webm", width=info.width, height=info.height, fps=info.fps,
                    audio_from=src, audio_codec=info.audio_codec)
    for f in VideoReader(src):
        w.write(f)
    w.close()
    assert probe(tmp_path / "out.webm").audio_codec in ("opus", "vorbis")


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_input(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video")
    with pytest.raises(InputError, match="cannot read"):
        open_input(junk)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        open_input(tmp_path / "empty")
    with pytest.raises(InputError, match="extension"):
        output_kind(tmp_path / "out.xyz")
    (tmp_path / "exists.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="exists"):
        open_output(tmp_path / "exists.mp4", width=8, height=8, fps=Fraction(25))
    w = open_output(tmp_path / "small.mp4", width=8, height=8, fps=Fraction(25))
    with pytest.raises(InputError, match="expected uint8"):
        w.write(np.zeros((9, 8, 3), np.uint8))
    w.abort()


def test_reader_stops_ffmpeg_when_abandoned(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=20)
    reader = VideoReader(src)
    it = iter(reader)
    next(it)
    proc = reader._frames._proc  # the ffmpeg behind the reader (video.FFmpegFrames)
    it.close()  # generator closed early (e.g. an error downstream)
    assert proc.poll() is not None


def test_ffmpeg_binary_is_the_bundled_one():
    import imageio_ffmpeg

    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-version"], capture_output=True, text=True)
    assert out.returncode == 0 and "ffmpeg" in out.stdout

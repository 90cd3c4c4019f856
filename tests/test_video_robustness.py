"""Nothing lost, ever: checked writes (size limit, disk full, folder removed), tiny and rotated inputs,
cut-off files and variable frame rates said aloud. Clips are a few tiny frames made with the bundled ffmpeg."""
import errno
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pervfi_core.errors import InputError
from pervfi_core.video import (VideoReader, VideoWriter, WriteError, _declared_rate, _fields, open_input, open_output,
                               probe)

ROOT = Path(__file__).resolve().parents[1]


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True)


def noise(rng, size=64):
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)


# ---------------------------------------------------------------- probing


def test_stream_fields_do_not_confuse_codec_tags_with_sizes():
    mp4 = ("h264 (High 4:4:4 Predictive) (avc1 / 0x31637661), yuv444p(progressive), 8x8 [SAR 1:1 DAR 1:1], "
           "10 kb/s, 25 fps, 25 tbr, 12800 tbn (default)")
    assert _fields(mp4)[2] == "8x8 [SAR 1:1 DAR 1:1]"
    assert _declared_rate(mp4) == 25
    webm = "vp9 (Profile 1), gbrp(pc, gbr/unknown/unknown, progressive), 64x48, SAR 1:1 DAR 4:3, 30 fps, 30 tbr, 1k tbn"
    assert _fields(webm)[1] == "gbrp(pc, gbr/unknown/unknown, progressive)" and _declared_rate(webm) == 30
    assert _declared_rate("mpeg2video, yuv420p(tv, top first), 720x480, 29.97 tbr, 90k tbn") == Fraction(30000, 1001)
    assert _declared_rate("h264, yuv420p, 2x2, 1k tbr, 1k tbn") == 1000


def test_tiny_8x8_yuv444p_video(tmp_path):
    src = tmp_path / "tiny.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=8x8:rate=25", "-frames:v", "12", "-c:v", "libx264",
           "-pix_fmt", "yuv444p", str(src))
    info = probe(src)
    assert (info.width, info.height, info.fps, info.frame_count) == (8, 8, Fraction(25), 12)
    assert info.frame_count_exact and not info.variable_rate and not info.truncated
    frames = list(VideoReader(src))
    assert len(frames) == 12 and frames[0].shape == (8, 8, 3)


def test_rotated_video_reports_the_size_frames_come_in(tmp_path):
    # The stream line shows the coded 32x16; ffmpeg rotates on decode, so frames are 16x32.
    plain, rotated = tmp_path / "plain.mp4", tmp_path / "rotated.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x16:rate=25", "-frames:v", "4", "-c:v", "libx264", str(plain))
    ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated))
    info = probe(rotated)
    assert (info.width, info.height) == (16, 32)
    assert [f.shape for f in VideoReader(rotated)] == [(32, 16, 3)] * 4


def test_audio_longer_than_video_is_not_taken_for_missing_frames(tmp_path, caplog):
    src = tmp_path / "long_audio.mp4"
    ffmpeg("-f", "lavfi", "-t", "1", "-i", "testsrc=size=32x32:rate=25", "-f", "lavfi", "-i", "sine=duration=3",
           "-c:v", "libx264", "-c:a", "aac", str(src))
    info = probe(src)
    assert info.duration == pytest.approx(3.0, abs=0.05)  # the container's length is the audio's
    assert info.frame_count == 25 and info.frame_count_exact and not info.truncated
    with caplog.at_level(logging.WARNING, logger="pervfi_core.video"):
        reader = open_input(src)
        assert len(list(reader)) == 25
    assert not reader.truncated and caplog.records == []


def test_cut_off_faststart_mp4_is_said_aloud(tmp_path, caplog):
    # With the index (moov) at the front, a file cut in the middle still opens and decodes its first part.
    full, cut = tmp_path / "full.mp4", tmp_path / "cut.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", "60", "-c:v", "libx264", "-g", "10",
           "-movflags", "+faststart", str(full))
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    info = probe(cut)
    assert info.truncated and info.frame_count == 60 and info.fps == 25 and not info.variable_rate
    with caplog.at_level(logging.WARNING, logger="pervfi_core.video"):
        reader = open_input(cut)
        frames = list(reader)
    assert 0 < len(frames) < 58
    assert reader.truncated and reader.frames_read == len(frames) == reader.frame_count
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "cut short" in text and f"ended after {len(frames)} frames" in text and "declares 60 frames" in text


@pytest.mark.parametrize("ext,codec", [("mp4", "libx264"), ("mkv", "libx264")])
def test_variable_frame_rate_is_detected_and_retimed_to_the_average(tmp_path, caplog, ext, codec):
    # 10 frames at 10 fps, then 30 frames at 30 fps: 40 frames in 2 s, average 20 fps. MKV declares
    # 30 fps, MP4 18.75: neither matches the timestamps.
    src = tmp_path / f"vfr.{ext}"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=30", "-frames:v", "40",
           "-vf", "setpts='if(lt(N,10),N*3,30+(N-10))/30/TB'", "-fps_mode", "passthrough", "-c:v", codec, str(src))
    info = probe(src)
    assert info.variable_rate and info.fps == 20 and info.frame_count == 40
    assert info.drift == pytest.approx(0.5, abs=0.02)  # frame 10: source 1.0 s, output 0.5 s
    with caplog.at_level(logging.WARNING, logger="pervfi_core.video"):
        assert len(list(open_input(src))) == 40
    text = caplog.records[0].getMessage()
    assert "variable frame rate" in text and "20 fps" in text and "0.50 s" in text and "audio" in text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pervfi_core.video"):
        reader = open_input(src, fps=24)
        list(reader)
    assert reader.info.fps == 24 and reader.info.variable_rate
    assert "given 24 fps" in caplog.records[0].getMessage()


def test_constant_rate_with_millisecond_timestamps_is_not_variable(tmp_path):
    src = tmp_path / "ntsc.mkv"  # Matroska rounds 33.37 ms steps to whole milliseconds
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=30000/1001", "-frames:v", "30", "-c:v", "libx264", str(src))
    info = probe(src)
    assert info.fps == Fraction(30000, 1001) and not info.variable_rate and info.frame_count == 30


def test_bad_inputs_stay_clear(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_input(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("a text file renamed .mp4\n" * 20)
    with pytest.raises(InputError, match="cannot read"):
        open_input(text)


# ---------------------------------------------------------------- checked writes


def assert_nothing_left(folder: Path):
    assert sorted(p.name for p in folder.iterdir()) == []


_LIMITED_WRITER = textwrap.dedent("""
    import resource, signal, sys
    from fractions import Fraction
    import numpy as np
    from pervfi_core.video import WriteError, open_output

    # Past the limit a write fails with EFBIG instead of killing the process with SIGXFSZ
    # (ffmpeg, started by subprocess, gets the default action back and is killed by it).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))
    rng = np.random.default_rng(0)
    w = open_output(sys.argv[1], width=128, height=128, fps=Fraction(25))
    try:
        for _ in range(40):  # each noise PNG is about 49 kB; the video about 1.5 MB
            w.write(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
        w.close()
    except WriteError as err:
        w.abort()
        print(f"WriteError errno={err.errno}: {err}")
    else:
        print("written")
""")


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE and SIGXFSZ are POSIX")
@pytest.mark.parametrize("name", ["frames", "out.mp4"])
def test_file_size_limit_gives_a_clear_error_and_leaves_nothing(tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _LIMITED_WRITER, str(out / name)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"WriteError errno={errno.EFBIG}:"), proc.stdout + proc.stderr
    assert "ulimit -f" in proc.stdout and str(out / name) in proc.stdout
    if name == "frames":
        assert os.strerror(errno.EFBIG) in proc.stdout and "frame_000000.png" in proc.stdout
    else:
        assert "SIGXFSZ" in proc.stdout
    assert_nothing_left(out)


@pytest.mark.parametrize("name", ["frames", "out.mp4"])
def test_output_folder_removed_mid_run(tmp_path, name):
    parent = tmp_path / "parent"
    rng = np.random.default_rng(0)
    w = open_output(parent / name, width=64, height=64, fps=Fraction(25))
    with pytest.raises(WriteError, match="removed or renamed") as caught:
        for k in range(6):
            w.write(noise(rng))
            if k == 2:
                shutil.rmtree(parent)  # a frame folder fails at the next frame, a video at close()
        w.close()
    w.abort()
    assert caught.value.errno == errno.ENOENT and isinstance(caught.value, InputError)
    assert not parent.exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (needs root and a sandbox that allows mounts; skipped otherwise)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small disk needs `mount -t tmpfs` as root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("name", ["frames", "out.mp4"])
def test_disk_full_gives_a_clear_error_and_leaves_nothing(small_disk, name):
    rng = np.random.default_rng(0)
    w = open_output(small_disk / name, width=256, height=256, fps=Fraction(25))
    with pytest.raises(WriteError) as caught:
        for _ in range(60):  # 60 noise frames of 192 kB each: far more than 2 MiB, as PNG or H.264
            w.write(noise(rng, 256))
        w.close()
    w.abort()
    message = str(caught.value)
    assert caught.value.errno == errno.ENOSPC
    assert os.strerror(errno.ENOSPC) in message and "free some space" in message and str(small_disk / name) in message
    assert_nothing_left(small_disk)


def test_encoder_refusing_its_options_is_a_write_error(tmp_path):
    # open_output refuses such a crf up front (check_crf); the writer itself passes it on to ffmpeg
    w = VideoWriter(tmp_path / "out.mp4", width=64, height=64, fps=Fraction(25), crf=-99)
    with pytest.raises(WriteError, match="ffmpeg") as caught:
        for _ in range(20):
            w.write(np.zeros((64, 64, 3), np.uint8))
        w.close()
    assert "crf" in str(caught.value).lower() or "exited with status" in str(caught.value)
    w.abort()
    assert_nothing_left(tmp_path)


def test_overwriting_a_frame_folder_keeps_the_old_one_until_complete(tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    (out / "old.png").write_bytes(b"previous result")
    w = open_output(out, width=16, height=16, fps=Fraction(25), overwrite=True)
    w.write(np.zeros((16, 16, 3), np.uint8))
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"] and (out / "old.png").exists()
    w = open_output(out, width=16, height=16, fps=Fraction(25), overwrite=True)
    w.write(np.zeros((16, 16, 3), np.uint8))
    w.close()
    assert sorted(p.name for p in out.iterdir()) == ["frame_000000.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]  # no backup or temporary folder left


# ---------------------------------------------------------------- timing from the container's timestamps

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian's opencv-doc sample videos


def _opencv_sample(name: str) -> Path:
    path = OPENCV_DATA / name
    if not path.is_file():
        pytest.skip(f"{name} comes with the Debian package opencv-doc (not installed here)")
    return path


def test_bframe_avi_is_timed_by_its_decode_times(tmp_path, caplog):
    # AVI stores no presentation time for Xvid-style B-frame packets: counting only the packets that
    # have one made this 25 fps clip 16.84 fps (4 s became 5.9 s).
    from testkit.clips import bframe_avi

    src = bframe_avi(tmp_path / "bframes.avi", seconds=2)
    info = probe(src)
    assert (info.fps, info.frame_count, info.variable_rate, info.held_frames) == (25, 50, False, 0)
    with caplog.at_level(logging.WARNING, logger="pervfi_core.video"):
        assert len(list(open_input(src))) == 50
    assert caplog.records == []


def test_dropped_frames_are_held_so_the_clip_keeps_its_length(tmp_path, caplog):
    from testkit.clips import dropped_frames_avi

    src = dropped_frames_avi(tmp_path / "dropped.avi", frames=48)  # 48 frames over 50 slots of 1/25 s
    info = probe(src)
    assert (info.fps, info.frame_count, info.held_frames, info.variable_rate) == (25, 50, 2, False)
    with caplog.at_level(logging.WARNING, logger="pervfi_core.video"):
        frames = list(open_input(src))
    assert len(frames) == 50 and caplog.records == []
    repeats = [k for k in range(1, 50) if np.array_equal(frames[k], frames[k - 1])]
    assert len(repeats) == 2 and repeats[1] == repeats[0] + 1  # one picture held over the gap


def test_opencv_megamind_is_23_976_fps_for_its_11_26_seconds():
    info = probe(_opencv_sample("Megamind.avi"))  # Xvid with B-frames; AC3 audio of 11.26 s
    assert info.fps == Fraction(24000, 1001) and info.frame_count == 270 and not info.variable_rate
    assert info.frame_count / info.fps == pytest.approx(info.duration, abs=1 / 23.976)


def test_opencv_tree_keeps_its_29_6_seconds_of_null_frames(caplog):
    src = _opencv_sample("tree.avi")  # cinepak: 68 pictures, 376 empty packets (the picture repeats)
    info = probe(src)
    assert (info.fps, info.frame_count, info.held_frames) == (15, 444, 376)
    with caplog.at_level(logging.WARNING, logger="pervfi_core.video"):
        reader = open_input(src)
        count = sum(1 for _ in reader)
    assert count == 444 and not reader.truncated and caplog.records == []  # no "cut short" warning


# ---------------------------------------------------------------- what the input carries

def test_alpha_and_deep_inputs_are_said_aloud(tmp_path, caplog):
    from testkit.clips import alpha_mov, ten_bit_mkv

    for src, needle in ((alpha_mov(tmp_path / "alpha.mov"), "alpha channel (argb) that is not carried"),
                        (ten_bit_mkv(tmp_path / "deep.mkv"), "10 bits per sample (yuv420p10le)")):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pervfi_core.video"):
            assert len(list(open_input(src))) == 4
        assert [needle in r.getMessage() for r in caplog.records] == [True]


def test_pixel_aspect_ratio_is_carried_to_the_output(tmp_path):
    from testkit.clips import anamorphic_mp4

    info = probe(anamorphic_mp4(tmp_path / "anamorphic.mp4", sar="16/9"))
    assert info.sample_aspect == Fraction(16, 9)
    w = open_output(tmp_path / "o.mp4", width=32, height=32, fps=Fraction(25), sample_aspect=info.sample_aspect)
    for frame in open_input(tmp_path / "anamorphic.mp4"):
        w.write(frame)
    w.close()
    assert probe(tmp_path / "o.mp4").sample_aspect == Fraction(16, 9)

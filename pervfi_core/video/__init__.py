"""Streaming video I/O through the ffmpeg binary of ``imageio-ffmpeg``, and folders of frames.

``probe``: what a file holds (timing from the container's timestamps); ``read``: frames in;
``write``: frames out, atomically; ``claim``: one writer per output and the hidden names beside it;
``process``: ffmpeg children that die with the run; ``advice``: write errors a user can act on;
``carry``: what of the input (alpha, more than 8 bits) each output keeps; ``outputs``: what an output name
asks for.
"""
from .advice import WriteError
from .carry import RGB8, FrameFormat, carried
from .claim import OutputLock, remove_stale
from .probe import TIMING_SCAN_SECONDS, VideoInfo, _declared_rate, _fields, probe
from .process import STOP_SIGNALS, ffmpeg_exe
from .read import IMAGE_EXTENSIONS, FFmpegFrames, FrameFolderReader, VideoReader, frame_files, open_input
from .outputs import VIDEO_EXTENSIONS, output_kind
from .write import CRF_RANGE, FrameFolderWriter, VideoWriter, check_crf, check_output, open_output, write_all

__all__ = ["CRF_RANGE", "FFmpegFrames", "FrameFolderReader", "FrameFolderWriter", "FrameFormat", "IMAGE_EXTENSIONS",
           "OutputLock", "RGB8", "STOP_SIGNALS", "TIMING_SCAN_SECONDS", "VIDEO_EXTENSIONS", "VideoInfo", "VideoReader", "VideoWriter",
           "WriteError", "carried", "check_crf", "check_output", "ffmpeg_exe", "frame_files", "open_input", "open_output",
           "output_kind", "probe", "remove_stale", "write_all"]

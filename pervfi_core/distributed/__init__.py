"""Interpolation beyond one machine: long videos and many videos on a Ray cluster.

An input is cut into segments that share one frame with their neighbour (:mod:`.segments`, at
scene cuts where possible); each segment is one Ray task that writes its frames losslessly into a
job folder beside the output (:mod:`.worker`, :mod:`.jobs`); the output is then encoded once from
them (:mod:`.concat`). The result is frame for frame that of one process with the same options and
seeds. A task whose worker dies is retried; a re-run after a failure or Ctrl-C computes only the
segments not yet finished. Ray is optional and imported only when a run uses it (:mod:`.ray_runner`).

Modules: segments (plan), scan (pre-pass: count, cuts, timestamps), reader (one segment's input
frames), worker (one segment's work), jobs (job folder, manifest, resume), ray_runner (cluster and
tasks), concat (final assembly), driver (the whole run), progress (console), cli (the CLI's part).
"""
from .driver import JobSummary, Settings, Status, interpolate_distributed, interpolate_many
from .segments import DEFAULT_SEGMENT_FRAMES, Segment, plan_segments
from .worker import EngineSpec

__all__ = ["DEFAULT_SEGMENT_FRAMES", "EngineSpec", "JobSummary", "Segment", "Settings", "Status",
           "interpolate_distributed", "interpolate_many", "plan_segments"]

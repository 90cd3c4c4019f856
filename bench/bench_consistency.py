"""Does forward-backward consistency help the default engine? Occlusion cues from the flows, measured.

    python bench/bench_consistency.py [--opencv-doc DIR] [--triplets 8] [--out bench/results/consistency.md]

The consistency error of a pixel p of frame A is c_A(p) = |F_AB(p) + F_BA(p + F_AB(p))| px: large where A's
pixel is occluded in B (or the flow is wrong). Two ways of feeding it to the training-free engine, each
against the engine as shipped, on the triplets of bench/bench_motion.py (t = 0.5, DIS flows, 448 px wide):

* ``metric γ``: the softmax-splatting metric becomes Z - γ·c (inconsistent pixels lose where several land);
* ``occlusion θ``: pixels of the other frame with c > θ px (seen by it alone) are carried to time t and
  join the primary's hole mask, so the other frame provides them.

This is a measurement, not a product option: the engine adopts neither (see the result file).
"""
from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, as in the other benches
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_default import engine_frame, registry_parser, score_registry  # noqa: E402
from pervfi_core import training_free as tf  # noqa: E402
from pervfi_core.engines import load_estimator  # noqa: E402
from pervfi_core.ops.softsplat import softsplat  # noqa: E402
from pervfi_core.ops.warp import backward_warp  # noqa: E402
from report import write_report  # noqa: E402


def consistency(f_ab: torch.Tensor, f_ba: torch.Tensor) -> torch.Tensor:
    """c_A (B,1,H,W) in px: how far the round trip A -> B -> A misses its start."""
    return (f_ab + backward_warp(f_ba, f_ab, padding="border")).norm(dim=1, keepdim=True)


class Consistent(tf.TrainingFreeVFI):
    """The shipped engine plus the consistency cues of the module doc (gamma = 0 and theta = 0: off).

    Only the engine's two hooks change: ``_metric`` (the splatting metric) and ``_hole_mask`` (the
    primary's holes); ``_asymmetric`` records which flows it is working on so the hooks find the reverse flow.
    """

    def __init__(self, gamma: float = 0.0, theta: float = 0.0):
        super().__init__()
        self.gamma, self.theta = gamma, theta

    def _asymmetric(self, p, o, f_po, f_op, s):
        self._reverse = {id(f_po): f_op, id(f_op): f_po}  # _metric is called with these very tensors
        self._other = (f_op, f_po, s)
        return super()._asymmetric(p, o, f_po, f_op, s)

    def _metric(self, a, b, flow_ab):
        z = super()._metric(a, b, flow_ab)
        if not self.gamma:
            return z
        return (z - self.gamma * consistency(flow_ab, self._reverse[id(flow_ab)])).clamp(-20, 20)

    def _hole_mask(self, flow):
        mask = super()._hole_mask(flow)
        if not self.theta:
            return mask
        f_op, f_po, s = self._other  # the other frame's own pixels, carried to t, join the hole mask
        seen_by_o_only = (consistency(f_op, f_po) > self.theta).to(flow.dtype)
        only_o = softsplat(seen_by_o_only, (1 - s) * f_op, None, "avg").clamp(0, 1)
        return torch.maximum(mask, F.avg_pool2d(only_o, 5, stride=1, padding=2, count_include_pad=False))


VARIANTS = {"shipped": {}, "metric γ=0.1": dict(gamma=0.1), "metric γ=0.3": dict(gamma=0.3),
            "metric γ=1": dict(gamma=1.0), "occlusion θ=1 px": dict(theta=1.0), "occlusion θ=2 px": dict(theta=2.0),
            "metric γ=0.3 + occlusion θ=2 px": dict(gamma=0.3, theta=2.0)}


@torch.inference_mode()
def main(argv=None) -> None:
    args = registry_parser(__doc__, triplets=8, out="consistency.md").parse_args(argv)
    fns = {k: engine_frame(Consistent(**v)) for k, v in VARIANTS.items()}
    rows, total = score_registry(args, fns, load_estimator("dis"), count=False)
    lines = [f"# Forward-backward consistency in the default engine ({datetime.date.today()})", "",
             f"`python bench/bench_consistency.py{' --opencv-doc DIR' if args.opencv_doc else ''} "
             f"--triplets {args.triplets}` — t = 0.5, DIS flows, 448 px wide.", "",
             "| all triplets | variant | PSNR↑ | LPIPS-alex↓ | better LPIPS than shipped |", "|---|---|---|---|---|"]
    ref = np.array(total["shipped"])
    for k, v in total.items():
        v = np.array(v)
        lines.append(f"| all ({len(v)}) | {k} | {v[:, 0].mean():.2f} | {v[:, 1].mean():.4f} | "
                     f"{int((v[:, 1] < ref[:, 1]).sum())}/{len(v)} |")
    lines += ["", "| clip | triplets | variant | PSNR↑ | LPIPS-alex↓ |", "|---|---|---|---|---|", *rows]
    write_report(args.out, lines)


if __name__ == "__main__":
    main()

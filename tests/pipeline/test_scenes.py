"""The scene-cut rule: real cuts found, hard non-cuts (fast pans, flashes, brightness changes) left alone.
Recall and false cuts over many real pairs are measured by bench/bench_scenes.py (BENCHMARKS.md)."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pervfi_core.pipeline.scenes import colour_change, cut_scores, is_cut

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian's opencv-doc sample videos


def _scene(seed: int, h: int = 96, w: int = 160) -> torch.Tensor:
    """A smooth random picture (1,3,h,w): blobs of colour, as a shot's content."""
    coarse = torch.rand(1, 3, 6, 10, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_a_cut_to_another_shot_is_found():
    a, b = _scene(1), _scene(2)
    assert is_cut(a, b) and is_cut(b, a)
    assert float(cut_scores(a, a)[0]) == pytest.approx(0, abs=1e-3)


@pytest.mark.parametrize("shift", [4, 8, 12])  # pixels of 160: up to 7.5 % of the width per frame
def test_a_fast_pan_is_not_a_cut(shift):
    wide = _scene(3, w=200)
    assert not is_cut(wide[..., :160], wide[..., shift:shift + 160])


@pytest.mark.parametrize("lit", [lambda x: (x * 1.8).clamp(0, 1), lambda x: (x + 0.3).clamp(0, 1), lambda x: x * 0.3],
                         ids=["flash-gain", "flash-washout", "darker"])
def test_a_flash_or_a_lighting_change_is_not_a_cut(lit):
    a = _scene(4)
    assert float(colour_change(a, lit(a))[0]) > 0.2  # the colours alone would have called it a cut
    assert not is_cut(a, lit(a))


def test_flat_frames_are_judged_by_their_colours():
    black, white, grey = (torch.full((1, 3, 16, 16), v) for v in (0.0, 1.0, 0.02))
    assert is_cut(black, white) and not is_cut(black, grey)
    assert is_cut(black, _scene(5, 16, 16))  # a fade's first picture after black


def test_megamind_four_cuts_are_found_with_the_defaults_and_nothing_else():
    path = OPENCV_DATA / "Megamind.avi"
    if not path.is_file():
        pytest.skip("Megamind.avi comes with the Debian package opencv-doc (not installed here)")
    from pervfi_core.video import open_input

    frames = torch.stack([torch.from_numpy(f.copy()).permute(2, 0, 1) for f in open_input(path)]).float() / 255
    assert [i for i in range(len(frames) - 1) if is_cut(frames[i:i + 1], frames[i + 1:i + 2])] == [0, 97, 153, 199]

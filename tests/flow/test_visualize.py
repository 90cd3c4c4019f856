"""Middlebury-style colour coding of flow (pervfi_core.flow.visualize)."""
import pytest
import torch

from pervfi_core.errors import InputError
from pervfi_core.flow.visualize import RAMP_LENGTHS, FlowToColor, color_wheel, flow_to_color


def _uniform(u: float, v: float, h: int = 4, w: int = 5) -> torch.Tensor:
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0], flow[:, 1] = u, v
    return flow


def test_wheel_has_the_six_ramps_with_pure_primaries_at_their_starts():
    wheel = color_wheel()
    assert wheel.shape == (sum(RAMP_LENGTHS), 3)
    starts = torch.cumsum(torch.tensor((0,) + RAMP_LENGTHS[:-1]), 0)
    expected = [(1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1), (1, 0, 1)]
    for s, rgb in zip(starts.tolist(), expected):
        assert wheel[s].tolist() == list(map(float, rgb))


def test_no_motion_is_white_and_shape_range_layout():
    rgb = flow_to_color(torch.zeros(2, 2, 6, 7), max_flow=1.0)
    assert rgb.shape == (2, 3, 6, 7)
    assert torch.equal(rgb, torch.ones_like(rgb))


@pytest.mark.parametrize("u,v,dominant", [(3.0, 0.0, 0), (-3.0, 0.0, 2), (0.0, -3.0, 2), (0.0, 3.0, 0)])
def test_direction_picks_the_hue(u, v, dominant):
    # right -> red, left -> cyan-blue, up (-y) -> blue-violet, down (+y) -> orange-yellow
    rgb = flow_to_color(_uniform(u, v), max_flow=3.0)[0, :, 0, 0]
    assert int(rgb.argmax()) == dominant
    assert float(rgb.min()) < 0.5  # saturated, not white
    if v > 0:
        assert float(rgb[1]) > 0.5  # down is on the red->yellow ramp, up on blue->magenta


def test_length_sets_saturation_and_clipped_vectors_are_darker():
    small = flow_to_color(_uniform(1.0, 0.0), max_flow=4.0)[0, :, 0, 0]
    full = flow_to_color(_uniform(4.0, 0.0), max_flow=4.0)[0, :, 0, 0]
    clipped = flow_to_color(_uniform(8.0, 0.0), max_flow=4.0)[0, :, 0, 0]
    assert float(small.min()) > float(full.min())  # shorter = paler
    assert torch.allclose(clipped, full * 0.75)


def test_auto_scale_uses_the_largest_vector_of_the_batch():
    flow = torch.cat([_uniform(2.0, 0.0), _uniform(4.0, 0.0)])
    rgb = flow_to_color(flow)  # max_flow=None: 4 px is full saturation for both frames
    assert torch.allclose(rgb[1], flow_to_color(_uniform(4.0, 0.0), max_flow=4.0)[0])
    assert torch.allclose(rgb[0], flow_to_color(_uniform(2.0, 0.0), max_flow=4.0)[0])


def test_module_agrees_with_function():
    flow = torch.randn(2, 2, 8, 9) * 3
    assert torch.equal(FlowToColor(max_flow=2.5)(flow), flow_to_color(flow, max_flow=2.5))


def test_bad_input_raises_typed_error():
    with pytest.raises(InputError, match="2 channels"):
        flow_to_color(torch.zeros(1, 3, 4, 4))
    with pytest.raises(InputError):
        flow_to_color(torch.zeros(2, 4, 4))

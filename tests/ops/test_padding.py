import pytest
import torch

from pervfi_core.errors import InputError
from pervfi_core.ops.padding import Padding, pad_to_multiple


def test_centred_matches_official_gmflow_padding():
    # the fixture README: 124x180 padded to multiples of 16 -> (left, right, top, bottom) = (6, 6, 2, 2)
    x = torch.rand(2, 3, 124, 180)
    y, pad = pad_to_multiple(x, 16)
    assert y.shape == (2, 3, 128, 192)
    assert pad == Padding(6, 6, 2, 2)
    assert torch.equal(y[..., 2:126, 6:186], x)
    assert y[..., :2, :].abs().sum() == 0 and y[..., :, -6:].abs().sum() == 0
    assert torch.equal(pad.crop(y), x)


def test_centred_odd_padding_puts_the_extra_pixel_right_and_bottom():
    # 124x180 to multiples of 8 -> RAFT's (2, 2, 2, 2); 5x3 to 8 -> floor/ceil split
    assert pad_to_multiple(torch.zeros(1, 1, 124, 180), 8)[1] == Padding(2, 2, 2, 2)
    assert pad_to_multiple(torch.zeros(1, 1, 5, 3), 8)[1] == Padding(2, 3, 1, 2)


def test_bottom_right_and_value():
    x = torch.ones(1, 2, 5, 6)
    y, pad = pad_to_multiple(x, 4, mode="bottom_right", value=-1.0)
    assert pad == Padding(0, 2, 0, 3)
    assert y.shape == (1, 2, 8, 8)
    assert torch.equal(y[..., :5, :6], x)
    assert (y[..., 5:, :] == -1).all() and (y[..., :, 6:] == -1).all()


def test_min_size_pads_small_frames_up():
    y, pad = pad_to_multiple(torch.rand(1, 3, 20, 200), 8, min_size=128)
    assert y.shape[-2:] == (128, 200)
    assert pad.top + pad.bottom == 108 and pad.left == pad.right == 0


def test_already_aligned_is_untouched():
    x = torch.rand(1, 3, 32, 48)
    y, pad = pad_to_multiple(x, 16)
    assert y is x and pad.is_empty and pad.crop(y) is not None and torch.equal(pad.crop(y), x)


@pytest.mark.parametrize("kwargs", [dict(multiple=0), dict(multiple=8, mode="reflect")])
def test_bad_arguments(kwargs):
    with pytest.raises(InputError):
        pad_to_multiple(torch.zeros(1, 1, 4, 4), **kwargs)


def test_replicate_fill_repeats_edge_pixels_and_crops_back():
    from pervfi_core.ops.padding import padding_for

    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    padding = padding_for((2, 3), 4, mode="bottom_right")
    y = padding.apply(x, fill="replicate")
    assert y.shape == (1, 1, 4, 4)
    assert torch.equal(y[..., -1, :3], x[..., -1, :]) and torch.equal(y[..., :2, -1], x[..., :, -1])
    assert torch.equal(padding.crop(y), x)
    with pytest.raises(InputError):
        padding.apply(x, fill="reflect")

"""MultiscaleFuse and VBDecoder on small configurations: shapes and per-sample independence."""
from __future__ import annotations

import pytest
import torch

from pervfi_core.generator import MultiscaleFuse, VBDecoder

SMALL_FUSE = dict(in_channels=(5, 6, 7), stem_channels=8, bottleneck_width=4, n_bottlenecks=2,
                  branch_channels=(4, 6, 8), n_modules=1, n_basic_blocks=1)


def _feats(batch, h, w, channels):
    return [torch.randn(batch, c, h // 2**i, w // 2**i) for i, c in enumerate(channels)]


@pytest.mark.parametrize("batch", [1, 2])
def test_fuse_halves_each_level_and_keeps_channels(batch, randomize):
    fuse = randomize(MultiscaleFuse(**SMALL_FUSE))
    with torch.no_grad():
        conds = fuse(_feats(batch, 16, 24, SMALL_FUSE["in_channels"]))
    assert [tuple(c.shape) for c in conds] == [(batch, 5, 8, 12), (batch, 6, 4, 6), (batch, 7, 2, 3)]


def test_fuse_samples_are_independent(randomize):
    fuse = randomize(MultiscaleFuse(**SMALL_FUSE))
    feats = _feats(2, 16, 16, SMALL_FUSE["in_channels"])
    with torch.no_grad():
        both = fuse(feats)
        second = fuse([f[1:] for f in feats])
    for a, b in zip(both, second):
        torch.testing.assert_close(a[1:], b, atol=1e-5, rtol=0)


def test_fuse_uses_every_level(randomize):
    """Each input level reaches every output (the HRNet exchange units mix the branches)."""
    fuse = randomize(MultiscaleFuse(**SMALL_FUSE), gain=1.0)
    feats = _feats(1, 16, 16, SMALL_FUSE["in_channels"])
    with torch.no_grad():
        base = fuse(feats)
        for lv in range(3):
            changed = list(feats)
            changed[lv] = feats[lv] + 1.0
            outs = fuse(changed)
            assert all((o - b).abs().max() > 0 for o, b in zip(outs, base)), lv


@pytest.mark.parametrize("band_rows", [2, 6, 10, 31])
def test_fuse_in_row_bands_equals_one_piece(band_rows, randomize):
    """The banded full-resolution stage (halo rows computed and dropped) gives the one-piece result,
    also when the band does not divide the height, and is not used while gradients are recorded."""
    fuse = randomize(MultiscaleFuse(**SMALL_FUSE), gain=1.0)
    feats = _feats(2, 40, 24, SMALL_FUSE["in_channels"])
    with torch.no_grad():
        fuse.band_rows = None
        whole = fuse(feats)
        fuse.band_rows = band_rows
        banded = fuse(feats)
    for a, b in zip(whole, banded):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    fuse.band_rows = 1  # the smallest band: with gradients the graph stays whole and still matches
    torch.testing.assert_close(fuse(feats)[0], whole[0], atol=1e-5, rtol=0)


def test_tune_malloc_is_accepted_where_glibc_is():
    import platform

    from pervfi_core import tune_malloc

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert tune_malloc() is expected


@pytest.mark.parametrize("batch", [1, 2])
def test_vb_decoder_output_shape(batch, randomize):
    dec = randomize(VBDecoder(cond_channels=(5, 6, 7), hidden=(8, 9, 10), shuffle_channels=4))
    conds = [torch.randn(batch, c, 8 // 2**i, 12 // 2**i) for i, c in enumerate((5, 6, 7))]
    with torch.no_grad():
        y = dec(conds)
    assert y.shape == (batch, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(dec([c[-1:] for c in conds]), y[-1:], atol=1e-5, rtol=0)

"""Fixtures of the pretrained-estimator tests."""
import pytest
import torch

from pervfi_core.errors import PerVFIError


@pytest.fixture(scope="module")
def pair():
    """A 192x256 synthetic triplet with exact motion (about 10 px), from the sample photos."""
    from pervfi_core.train.data import read_image, registry_photos
    from pervfi_core.train.synthetic import random_scene, synthetic_triplet

    try:
        photos = [read_image(p) for p in registry_photos()[:4]]
    except PerVFIError as err:
        pytest.skip(f"sample photos unavailable: {err}")
    g = torch.Generator().manual_seed(2)
    scene = random_scene(photos[0], photos[3], size=(192, 256), max_shift=16, generator=g)
    return synthetic_triplet(scene)

import torch
import torch.nn.functional as F

from pervfi_core.train.synthetic import Motion, random_scene, synthetic_triplet


def _texture(seed: int, h: int = 300, w: int = 340) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)


def _backwarp(img, flow):
    _, h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    gx = (xs + flow[0]) / (w - 1) * 2 - 1
    gy = (ys + flow[1]) / (h - 1) * 2 - 1
    grid = torch.stack([gx, gy], -1)[None].float()
    return F.grid_sample(img[None], grid, align_corners=True, padding_mode="border")[0]


def test_motion_matrix_is_identity_at_time_zero_and_composes_linearly_for_shift():
    m = Motion(shift=(3.0, -2.0), rot=0.0, zoom=1.0)
    assert torch.allclose(m.matrix(0.0, (5, 5)), torch.eye(3, dtype=torch.float64))
    assert torch.allclose(m.matrix(0.5, (5, 5))[:2, 2], torch.tensor([1.5, -1.0], dtype=torch.float64))


def test_triplet_frames_follow_the_true_flow():
    g = torch.Generator().manual_seed(3)
    scene = random_scene(_texture(0), _texture(1), size=(64, 80), max_shift=6.0, generator=g)
    tri = synthetic_triplet(scene, t=0.5)
    assert tri["img0"].shape == (3, 64, 80) and tri["flow01"].shape == (2, 64, 80)
    # Warping frame 1 back along the true flow 0->1 reproduces frame 0 away from occlusions and borders.
    recon = _backwarp(tri["img1"], tri["flow01"])
    back = _backwarp(tri["flow10"], tri["flow01"])  # forward-backward consistency marks visible pixels
    visible = ((tri["flow01"] + back).norm(dim=0) < 0.5)
    visible[:8], visible[-8:], visible[:, :8], visible[:, -8:] = False, False, False, False
    err = (recon - tri["img0"]).abs().mean(0)[visible]
    assert visible.float().mean() > 0.5
    assert err.mean() < 0.01
    # The middle frame differs from both ends (there is motion) and from their average.
    assert (tri["gt"] - tri["img0"]).abs().mean() > 0.01
    assert (tri["gt"] - (tri["img0"] + tri["img1"]) / 2).abs().mean() > 0.005


def test_scene_is_deterministic_given_the_generator():
    a = random_scene(_texture(0), _texture(1), size=(32, 32), generator=torch.Generator().manual_seed(7))
    b = random_scene(_texture(0), _texture(1), size=(32, 32), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.render(0.3), b.render(0.3))

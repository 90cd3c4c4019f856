import pytest
import torch

from pervfi_core.errors import InputError
from pervfi_core.train.data import FrameTriplets, SyntheticTriplets, VimeoTriplets


def _photos():
    g = torch.Generator().manual_seed(0)
    return [torch.nn.functional.interpolate(torch.rand(1, 3, 40, 40, generator=g), size=(200, 220))[0] for _ in range(3)]


def test_synthetic_triplets_are_reproducible_and_shaped():
    ds = SyntheticTriplets(_photos(), length=3, size=(48, 64), seed=1)
    a, b = ds[2], ds[2]
    assert len(ds) == 3
    assert a["img0"].shape == (3, 48, 64) and float(a["t"]) == 0.5
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(ds[0]["img0"], ds[1]["img0"])


def test_random_t_lies_inside_the_pair():
    ds = SyntheticTriplets(_photos(), length=8, size=(32, 32), random_t=True)
    ts = [float(ds[i]["t"]) for i in range(8)]
    assert all(0.1 <= t <= 0.9 for t in ts) and len(set(ts)) > 1


def test_frame_triplets_take_the_middle_frame_as_ground_truth():
    frames = torch.arange(5).float().view(5, 1, 1, 1).expand(5, 3, 8, 8) / 4
    ds = FrameTriplets(frames, size=(4, 4))
    item = ds[1]
    assert len(ds) == 3
    assert float(item["img0"].mean()) == 0.25 and float(item["gt"].mean()) == 0.5 and float(item["img1"].mean()) == 0.75
    assert item["gt"].shape == (3, 4, 4)


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(InputError, match="at least 2 photos"):
        SyntheticTriplets(_photos()[:1], length=1)
    with pytest.raises(InputError, match="N>=3"):
        FrameTriplets(torch.rand(2, 3, 8, 8))
    with pytest.raises(InputError, match="tri_trainlist.txt"):
        VimeoTriplets(tmp_path)


def test_vimeo_reader_reads_the_triplet_layout(tmp_path):
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    seq = tmp_path / "sequences" / "00001" / "0001"
    seq.mkdir(parents=True)
    for k in (1, 2, 3):
        cv2.imwrite(str(seq / f"im{k}.png"), np.full((16, 24, 3), 40 * k, np.uint8))
    (tmp_path / "tri_trainlist.txt").write_text("00001/0001\n")
    item = VimeoTriplets(tmp_path, size=(8, 8))[0]
    assert item["img0"].shape == (3, 8, 8)
    assert abs(float(item["gt"].mean()) - 80 / 255) < 1e-6


def test_precomputed_items_carry_the_frozen_exact_flows_and_reload_from_cache(tmp_path):
    from pervfi_core.train.data import Precomputed
    from pervfi_core.train.loop import FlowProvider

    base = SyntheticTriplets(_photos(), length=3, size=(32, 40), seed=2, with_flows=True)
    flows = FlowProvider(("exact",), seed=0, device="cpu")
    pre = Precomputed(base, flows, cache=tmp_path / "data.pt")
    again = Precomputed(None, None, cache=tmp_path / "data.pt")  # from the cache, no recomputation
    assert len(pre) == len(again) == 3
    for i in range(3):
        assert torch.equal(pre[i]["fflow"], base[i]["flow01"]) and torch.equal(pre[i]["bflow"], base[i]["flow10"])
        assert torch.equal(pre[i]["gt"], base[i]["gt"]) and torch.equal(again[i]["img1"], pre[i]["img1"])
        assert "flow01" not in pre[i]


def test_frame_triplets_with_a_gap_skip_frames_and_need_enough_of_them():
    frames = torch.arange(7).float().view(7, 1, 1, 1).expand(7, 3, 4, 4) / 6
    ds = FrameTriplets(frames, gap=3)
    assert len(ds) == 1
    item = ds[0]
    assert [round(float(item[k].mean()) * 6) for k in ("img0", "gt", "img1")] == [0, 3, 6]
    with pytest.raises(InputError, match="N>=9"):
        FrameTriplets(frames, gap=4)
    with pytest.raises(InputError, match="gap must be"):
        FrameTriplets(frames, gap=0)


def test_folder_photos_reads_every_image_below_a_folder_and_caps_the_longer_side(tmp_path):
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "wide.png"), np.full((100, 400, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "sub" / "small.jpg"), np.full((30, 20, 3), 10, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    from pervfi_core.train.data import folder_photos

    photos = folder_photos(tmp_path, max_side=200)
    assert [tuple(p.shape) for p in photos] == [(3, 30, 20), (3, 50, 200)]  # sorted: sub/small.jpg, wide.png
    assert abs(float(photos[1].mean()) - 200 / 255) < 1e-6
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .jpg/.png"):
        folder_photos(tmp_path / "empty")


def test_compact_items_round_trip_within_quantisation(tmp_path):
    from pervfi_core.train.data import Precomputed, compact_items, load_items

    g = torch.Generator().manual_seed(0)
    items = {"img0": torch.rand(4, 3, 8, 8, generator=g), "gt": torch.rand(4, 3, 8, 8, generator=g),
             "img1": torch.rand(4, 3, 8, 8, generator=g), "t": torch.full((4,), 0.5),
             "fflow": 30 * torch.randn(4, 2, 8, 8, generator=g), "bflow": 30 * torch.randn(4, 2, 8, 8, generator=g)}
    small = compact_items(items)
    assert small["img0"].dtype == torch.uint8 and small["fflow"].dtype == torch.float16
    torch.save(small, tmp_path / "small.pt")
    back = load_items(tmp_path / "small.pt")
    assert all(back[k].dtype == torch.float32 for k in items)
    assert (back["gt"] - items["gt"]).abs().max() <= 0.5 / 255 + 1e-6
    assert (back["fflow"] - items["fflow"]).abs().max() < 0.1 and torch.equal(back["t"], items["t"])
    assert torch.equal(Precomputed.from_file(tmp_path / "small.pt")[2]["img1"], back["img1"][2])
    torch.save({"frames": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a table"):
        load_items(tmp_path / "other.pt")

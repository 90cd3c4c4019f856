"""The node pack, called the way ComfyUI calls it, on real frames (see conftest.py)."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

import nodes
from nodes import comfy as rt
from nodes.interpolate import PerVFIInterpolate
from nodes.loaders import PerVFILoadFlowModel, PerVFILoadModel
from nodes.stages import PerVFIASBBlend, PerVFIFlowDecode, PerVFIFlowEstimation, PerVFIFlowToImage
from pervfi_core.engine import DEFAULT_TAU
from pervfi_core.errors import InputError
from testkit.nodes import ROOT, run_node, schema_inputs


# ---------------------------------------------------------------- the contract ComfyUI relies on
NODE_IDS = [cls.define_schema().node_id for cls in nodes.NODES]


@pytest.mark.parametrize("cls", nodes.NODES, ids=NODE_IDS)
def test_every_node_declares_a_v3_schema_with_names_descriptions_and_tooltips(cls):
    schema = cls.define_schema()
    assert schema.node_id == cls.__name__ and schema.node_id.startswith("PerVFI")
    assert schema.category in ("video/PerVFI", "model/loaders/PerVFI")  # beside core's "video" and "model/loaders"
    assert schema.display_name and schema.description and schema.search_aliases
    for port in [*schema.inputs, *schema.outputs]:
        assert port.tooltip, f"{schema.node_id}.{port.id} has no tooltip"
    assert callable(cls.execute)


def test_display_names_show_the_three_stages_and_search_finds_the_core_words():
    names = {cls.__name__: cls.define_schema().display_name for cls in nodes.NODES}
    assert names["PerVFIFlowEstimation"] == "PerVFI Motion (optical flow)"
    assert names["PerVFIASBBlend"] == "PerVFI Asymmetric Blend (ASB)"
    assert names["PerVFIFlowDecode"] == "PerVFI Decode (τ)"
    aliases = set(PerVFIInterpolate.define_schema().search_aliases)
    assert {"rife", "film", "vfi", "slow motion", "interpolate frames"} <= aliases


def test_tau_is_a_slider_from_0_to_1_defaulting_to_the_core_s_and_the_seed_stays_fixed():
    from pervfi_core.pipeline import DEFAULT_TAU

    for cls in (PerVFIFlowDecode, PerVFIInterpolate):
        tau, seed = schema_inputs(cls)["tau"], schema_inputs(cls)["seed"]
        assert (tau.min, tau.max, tau.default, tau.display_mode) == (0.0, 1.0, DEFAULT_TAU, "slider")
        assert seed.control_after_generate == "fixed"  # never 'randomize': an unchanged Queue must not re-run


def test_multiplier_limit_is_the_core_s():
    from pervfi_core.pipeline.schedule import MULTIPLIER_RANGE

    for cls in (PerVFIInterpolate, PerVFIASBBlend):
        spec = schema_inputs(cls)["multiplier"]
        assert (spec.min, spec.max) == MULTIPLIER_RANGE


def test_pack_loads_the_way_comfyui_imports_it():
    # ComfyUI imports the folder as a package named after the folder, from its __init__.py, and awaits
    # comfy_entrypoint() -> extension -> get_node_list().
    import asyncio

    spec = importlib.util.spec_from_file_location("comfyui-pervfi-under-test", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert not hasattr(module, "NODE_CLASS_MAPPINGS")  # ComfyUI would read it instead of the entrypoint
        extension = asyncio.run(module.comfy_entrypoint())
        listed = asyncio.run(extension.get_node_list())
        assert [c.define_schema().node_id for c in listed] == NODE_IDS
    finally:
        for name in [n for n in sys.modules if n.startswith(spec.name)]:
            del sys.modules[name]


# ---------------------------------------------------------------- real frames through the nodes
@pytest.fixture(scope="module")
def default_models():
    model, = run_node(PerVFILoadModel, checkpoint="default", dtype="float32")
    flow_model, = run_node(PerVFILoadFlowModel, estimator="auto", checkpoint="default")
    return model, flow_model


def _staged(frames, model, flow_model, multiplier=2, tau=0.3, seed=0, timesteps=""):
    flow, = run_node(PerVFIFlowEstimation, frames=frames, flow_model=flow_model)
    blend, masks = run_node(PerVFIASBBlend, frames=frames, flow=flow, model=model, multiplier=multiplier,
                            timesteps=timesteps)
    out, _, _ = run_node(PerVFIFlowDecode, blend=blend, model=model, tau=tau, seed=seed)
    return flow, blend, masks, out


@pytest.mark.parametrize("multiplier", [2, 3])
def test_staged_nodes_interleave_inputs_and_new_frames(clip, default_models, multiplier):
    model, flow_model = default_models
    _, _, masks, out = _staged(clip, model, flow_model, multiplier)
    n, h, w = clip.shape[0], clip.shape[1], clip.shape[2]
    assert out.shape == ((n - 1) * multiplier + 1, h, w, 3) and out.dtype == torch.float32
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    for i in range(n):  # every input frame sits, unchanged, at its place in time
        assert torch.equal(out[i * multiplier], clip[i])
    new = torch.stack([out[j] for j in range(out.shape[0]) if j % multiplier])
    assert not any(torch.equal(f, clip[i]) for f in new for i in range(n))  # new frames are really new
    assert masks.shape == ((n - 1) * (multiplier - 1), h, w) and 0 <= float(masks.min()) <= float(masks.max()) <= 1


def test_all_in_one_equals_the_staged_graph(clip, default_models):
    model, flow_model = default_models
    staged = _staged(clip, model, flow_model, 2)[-1]
    out, _, _ = run_node(PerVFIInterpolate, frames=clip, model=model, flow_model=flow_model, multiplier=2, tau=0.3,
                         seed=0)
    assert torch.equal(out, staged)


def test_a_run_gives_freed_heap_pages_back_before_and_after(clip, default_models, monkeypatch):
    """The IMAGE run sits inside allocator.trimmed(): upstream nodes' freed pages go back before the output
    is allocated, the run's own temporaries after it (bench/results/comfyui-rss.md)."""
    from pervfi_core import allocator

    calls = []
    monkeypatch.setattr(allocator, "trim_malloc", lambda: calls.append(len(calls)) or True)
    model, flow_model = default_models
    run_node(PerVFIInterpolate, frames=clip[:2], model=model, flow_model=flow_model, multiplier=2, tau=0.3, seed=0)
    assert len(calls) == 2


def test_explicit_timesteps_override_the_multiplier(clip, default_models):
    model, flow_model = default_models
    _, _, masks, out = _staged(clip[:2], model, flow_model, multiplier=2, timesteps="0.25, 0.5, 0.75")
    x4 = _staged(clip[:2], model, flow_model, multiplier=4)[-1]
    assert out.shape[0] == 5 and masks.shape[0] == 3
    assert torch.equal(out, x4)  # the same times as multiplier 4


def test_deterministic_model_ignores_tau_and_seed(clip, default_models):
    model, = run_node(PerVFILoadModel, checkpoint="training-free", dtype="float32")  # the default is τ-capable
    flow_model = default_models[1]
    _, blend, _, out = _staged(clip[:2], model, flow_model)
    other, _, _ = run_node(PerVFIFlowDecode, blend=blend, model=model, tau=1.0, seed=7)
    assert torch.equal(out, other)


def test_flow_to_image_colour_codes_every_pair(clip, default_models):
    _, flow_model = default_models
    flow, = run_node(PerVFIFlowEstimation, frames=clip, flow_model=flow_model)
    fwd, = run_node(PerVFIFlowToImage, flow=flow, direction="forward (0→1)", max_flow=0.0)
    both, = run_node(PerVFIFlowToImage, flow=flow, direction="both", max_flow=4.0)
    assert fwd.shape == (clip.shape[0] - 1, *clip.shape[1:]) and both.shape[0] == 2 * fwd.shape[0]
    assert 0 <= float(fwd.min()) and float(fwd.max()) <= 1
    assert float(fwd.std()) > 0.01  # real motion in the clip shows as colour, not a blank image


# ---------------------------------------------------------------- a stochastic model: τ and seed
@pytest.fixture(scope="module")
def v00_blend(clip, default_models, parity_dir):
    """The official v00 architecture with the parity fixtures' random weights, on two 48x27 frames."""
    from safetensors.torch import load_file

    from pervfi_core import build_engine

    model = build_engine("v00")
    model.network.load_state_dict(load_file(str(parity_dir / "weights" / "pervfi_v00.safetensors")))
    frames = torch.nn.functional.interpolate(clip[:2].permute(0, 3, 1, 2), size=(27, 48), mode="area")
    frames = frames.permute(0, 2, 3, 1).contiguous()
    flow, = run_node(PerVFIFlowEstimation, frames=frames, flow_model=default_models[1])
    blend, _ = run_node(PerVFIASBBlend, frames=frames, flow=flow, model=model, multiplier=2)
    return frames, model, blend


def test_stochastic_model_tau_and_seed_change_only_the_new_frames(v00_blend):
    frames, model, blend = v00_blend
    decode = lambda tau, seed: run_node(PerVFIFlowDecode, blend=blend, model=model, tau=tau, seed=seed)[0]  # noqa: E731
    base = decode(0.3, 0)
    assert base.shape == (3, 27, 48, 3)
    assert torch.equal(decode(0.3, 0), base)  # same τ and seed -> same frames
    # compare_taus: the slider's τ, then each extra τ, side by side (width 48 each)
    both, _, _ = run_node(PerVFIFlowDecode, blend=blend, model=model, tau=0.3, seed=0, compare_taus="0.9")
    assert both.shape == (3, 27, 96, 3) and torch.equal(both[:, :, :48], base)
    for other in (both[:, :, 48:], decode(0.3, 1)):
        assert torch.equal(other[0], frames[0]) and torch.equal(other[2], frames[1])  # inputs untouched
        assert float((other[1] - base[1]).abs().max()) > 1e-3  # the new frame follows τ / the seed
    # noise: 'shared' (default) decodes every new frame with the seed; 'per-frame' output frame j with seed + j
    per_frame, _, _ = run_node(PerVFIFlowDecode, blend=blend, model=model, tau=0.3, seed=0, noise="per-frame")
    assert torch.equal(per_frame, decode(0.3, 1))  # the new frame is output frame 1


# ---------------------------------------------------------------- bad input: clear errors
def test_bad_frames_raise_clear_errors(clip, default_models):
    _, flow_model = default_models
    cases = {
        "at least 2 frames": clip[:1],
        "RGBA": torch.cat([clip, torch.ones_like(clip[..., :1])], dim=-1),
        "MASK": clip[..., 0],
        "same size": [clip[:2], clip[2:, :40]],
        "IMAGE tensor": "not an image",
    }
    for message, frames in cases.items():
        with pytest.raises(InputError, match=message):
            run_node(PerVFIFlowEstimation, frames=frames, flow_model=flow_model)


def test_flow_from_another_clip_is_refused(clip, default_models):
    model, flow_model = default_models
    flow3, = run_node(PerVFIFlowEstimation, frames=clip[:3], flow_model=flow_model)
    small = clip[:, :32, :48].contiguous()
    flow_small, = run_node(PerVFIFlowEstimation, frames=small, flow_model=flow_model)
    for flow in (flow3, flow_small):  # count mismatch, size mismatch
        with pytest.raises(InputError, match="computed for these frames"):
            run_node(PerVFIASBBlend, frames=clip, flow=flow, model=model, multiplier=2)


def test_wrong_links_and_timesteps_are_refused(clip, default_models):
    model, flow_model = default_models
    flow, = run_node(PerVFIFlowEstimation, frames=clip[:2], flow_model=flow_model)
    with pytest.raises(InputError, match="PerVFI Motion"):
        run_node(PerVFIASBBlend, frames=clip[:2], flow=clip, model=model, multiplier=2)
    with pytest.raises(InputError, match="PerVFI Asymmetric Blend"):
        run_node(PerVFIFlowDecode, blend=flow, model=model, tau=0.3, seed=0)
    for bad in ("0.5, abc", "0.5, 1.5", "0.6, 0.4"):
        with pytest.raises(InputError, match="timesteps"):
            run_node(PerVFIASBBlend, frames=clip[:2], flow=flow, model=model, multiplier=2, timesteps=bad)
    blend, _ = run_node(PerVFIASBBlend, frames=clip[:2], flow=flow, model=model, multiplier=2)
    for bad in ("0.5, x", "1.5"):
        with pytest.raises(InputError, match="compare_taus"):
            run_node(PerVFIFlowDecode, blend=blend, model=model, tau=0.3, seed=0, compare_taus=bad)


def test_wrong_checkpoint_architecture_is_refused(tmp_path, parity_dir):
    from pervfi_core.errors import ArchitectureMismatchError

    with pytest.raises(ArchitectureMismatchError, match="Load PerVFI Motion Estimator"):  # RAFT as a generator
        PerVFILoadModel.execute(str(parity_dir / "weights" / "raft_small.safetensors"), "float32")


# ---------------------------------------------------------------- ComfyUI glue (progress, cancel, folders)
def _long_clip(clip, n=8):
    return clip[torch.arange(n) % clip.shape[0]]


def test_interrupt_stops_within_one_frame_pair(clip, default_models, fake_comfyui):
    model, flow_model = default_models
    frames = _long_clip(clip)
    flow, = run_node(PerVFIFlowEstimation, frames=frames, flow_model=flow_model)
    fake_comfyui.progress.clear()
    fake_comfyui.interrupt_after = fake_comfyui.interrupt_checks + 2  # Cancel pressed during the 3rd pair
    with pytest.raises(fake_comfyui.mm.InterruptProcessingException):
        run_node(PerVFIASBBlend, frames=frames, flow=flow, model=model, multiplier=4)
    done = max((v for v, _ in fake_comfyui.progress), default=0)
    assert done <= 3 < frames.shape[0] - 1


def test_progress_and_interrupt_checks_once_per_pair(clip, default_models, fake_comfyui):
    model, flow_model = default_models
    frames = _long_clip(clip, 5)
    before = fake_comfyui.interrupt_checks
    out, _, _ = run_node(PerVFIInterpolate, frames=frames, model=model, flow_model=flow_model, multiplier=2,
                         tau=0.3, seed=0)
    pairs = frames.shape[0] - 1
    assert out.shape[0] == 2 * pairs + 1
    assert fake_comfyui.interrupt_checks - before >= pairs
    assert (pairs, pairs) in fake_comfyui.progress  # the ProgressBar reached the end


def test_model_folders_are_registered_and_listed(fake_comfyui, parity_dir):
    import shutil

    from pervfi_core import weights

    dirs = rt.register_model_folders()
    pervfi_dir = fake_comfyui.tmp / "models" / "pervfi"
    assert dirs["pervfi"] == [pervfi_dir] and fake_comfyui.folder_paths.get_folder_paths("pervfi_flow")
    assert pervfi_dir in weights.model_dirs("pervfi")
    pervfi_dir.mkdir(parents=True)
    shutil.copy(parity_dir / "weights" / "pervfi_vb.safetensors", pervfi_dir / "my_vb.safetensors")
    choices = schema_inputs(PerVFILoadModel)["checkpoint"].options
    ids = [c.split(" · ")[0] for c in choices]
    assert ids[:2] == ["default", "training-free"] and "my_vb.safetensors" in choices
    assert "pervfi-rife" not in ids and len(ids) == len(set(ids))  # each engine once: the default is pervfi-rife
    assert "pervfi-own" in ids  # embedded in the pack: always available
    model, = run_node(PerVFILoadModel, checkpoint="my_vb.safetensors", dtype="float32")
    model = rt.unwrap(model)  # inside ComfyUI the engine travels in a ModelPatcher
    assert model.info.architecture == "pervfi-vb" and not model.stochastic


def test_out_of_memory_goes_through_the_host_hooks(clip, fake_comfyui):
    emptied = []
    fake_comfyui.mm.soft_empty_cache = lambda force=False: emptied.append(True)

    def exhausted(img0, img1):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    from pervfi_core.pipeline import OutOfMemory

    with pytest.raises(OutOfMemory, match="out of memory"):
        run_node(PerVFIFlowEstimation, frames=clip, flow_model=exhausted)
    assert emptied  # ComfyUI's soft_empty_cache ran before giving up


def test_weight_downloads_report_to_a_progress_bar(fake_comfyui):
    report = rt.download_progress("PerVFI test")
    for done in (0, 4096, 10000):
        report(done, 10000)
    assert fake_comfyui.progress[-1] == (10000, 10000) and len(fake_comfyui.progress) == 3


def test_a_list_of_same_size_batches_is_one_clip(clip, default_models):
    _, flow_model = default_models
    flow, = run_node(PerVFIFlowEstimation, frames=[clip[:2], clip[2:]], flow_model=flow_model)
    assert flow.forward.shape == (clip.shape[0] - 1, 2, *clip.shape[1:3])


def test_rife_checkpoints_in_the_frame_interpolation_folder_are_offered_and_load(fake_comfyui):
    """RIFE 4.25/4.26 checkpoints that users keep in models/frame_interpolation for other nodes are
    listed by the flow loader and load as the 'rife' estimator; downloads still go to models/pervfi_flow."""
    from pervfi_core import weights
    from pervfi_core.flow.rife import IFNet

    folder = fake_comfyui.tmp / "models" / "frame_interpolation"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save({f"module.{k}": v for k, v in IFNet().state_dict().items()}, folder / "rife426.pth")
    choices = schema_inputs(PerVFILoadFlowModel)["checkpoint"].options
    assert "rife426.pth" in choices
    assert weights.model_dirs("pervfi_flow")[0] == fake_comfyui.tmp / "models" / "pervfi_flow"
    est, = run_node(PerVFILoadFlowModel, estimator="rife", checkpoint="rife426.pth")
    est = rt.unwrap(est)
    img = torch.rand(1, 3, 32, 48)
    fflow, bflow = est(img, img)
    assert fflow.shape == (1, 2, 32, 48) and torch.isfinite(fflow).all()

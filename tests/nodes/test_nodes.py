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
from pervfi_core.errors import InputError
from pervfi_node_helpers import ROOT, run_node


# ---------------------------------------------------------------- the contract ComfyUI relies on
@pytest.mark.parametrize("node_id", sorted(nodes.NODE_CLASS_MAPPINGS))
def test_every_node_declares_what_comfyui_reads(node_id):
    cls = nodes.NODE_CLASS_MAPPINGS[node_id]
    assert node_id.startswith("PerVFI") and cls.CATEGORY.split("/")[0] == "PerVFI"
    assert nodes.NODE_DISPLAY_NAME_MAPPINGS[node_id] and cls.DESCRIPTION
    assert callable(getattr(cls(), cls.FUNCTION))
    assert isinstance(cls.RETURN_TYPES, tuple) and len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
    assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)
    spec = cls.INPUT_TYPES()
    assert spec["required"]
    for section in spec.values():
        for name, entry in section.items():
            assert len(entry) == 2 and entry[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_tau_is_a_slider_from_0_to_1_defaulting_to_0_3():
    for cls in (PerVFIFlowDecode, PerVFIInterpolate):
        kind, opts = cls.INPUT_TYPES()["required"]["tau"]
        assert (kind, opts["min"], opts["max"], opts["default"], opts["display"]) == ("FLOAT", 0.0, 1.0, 0.3, "slider")


def test_pack_loads_the_way_comfyui_imports_it():
    # ComfyUI imports the folder as a package named after the folder, from its __init__.py.
    spec = importlib.util.spec_from_file_location("comfyui-pervfi-under-test", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert set(module.NODE_CLASS_MAPPINGS) == set(nodes.NODE_CLASS_MAPPINGS)
        assert module.NODE_DISPLAY_NAME_MAPPINGS["PerVFIFlowDecode"] == "PerVFI Flow Decode"
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
    out, = run_node(PerVFIFlowDecode, blend=blend, model=model, tau=tau, seed=seed)
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
    out, = run_node(PerVFIInterpolate, frames=clip, model=model, flow_model=flow_model, multiplier=2, tau=0.3, seed=0)
    assert torch.equal(out, staged)


def test_explicit_timesteps_override_the_multiplier(clip, default_models):
    model, flow_model = default_models
    _, _, masks, out = _staged(clip[:2], model, flow_model, multiplier=2, timesteps="0.25, 0.5, 0.75")
    x4 = _staged(clip[:2], model, flow_model, multiplier=4)[-1]
    assert out.shape[0] == 5 and masks.shape[0] == 3
    assert torch.equal(out, x4)  # the same times as multiplier 4


def test_deterministic_model_ignores_tau_and_seed(clip, default_models):
    model, flow_model = default_models
    _, blend, _, out = _staged(clip[:2], model, flow_model)
    other, = run_node(PerVFIFlowDecode, blend=blend, model=model, tau=1.0, seed=7)
    assert torch.equal(out, other)


def test_flow_to_image_colour_codes_every_pair(clip, default_models):
    _, flow_model = default_models
    flow, = run_node(PerVFIFlowEstimation, frames=clip, flow_model=flow_model)
    fwd, = run_node(PerVFIFlowToImage, flow=flow, direction="forward (0→1)", max_flow=0.0)
    both, = run_node(PerVFIFlowToImage, flow=flow, direction="both", max_flow=4.0)
    assert fwd.shape == (clip.shape[0] - 1, *clip.shape[1:]) and both.shape[0] == 2 * fwd.shape[0]
    assert 0 <= float(fwd.min()) and float(fwd.max()) <= 1
    assert float(fwd.std()) > 0.01  # real motion in the clip shows as colour, not a blank image

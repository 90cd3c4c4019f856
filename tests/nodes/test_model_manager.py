"""Inside ComfyUI the models travel in ModelPatchers and every node that runs one asks the model manager
first (load_models_gpu with the run's memory estimate); stand-alone the nodes take plain engines."""
from __future__ import annotations

import pytest
import torch

from nodes import comfy as rt
from nodes.interpolate import PerVFIInterpolate
from nodes.loaders import PerVFILoadFlowModel, PerVFILoadModel
from nodes.stages import PerVFIASBBlend, PerVFIFlowDecode, PerVFIFlowEstimation
from nodes.video import PerVFIInterpolateVideo
from pervfi_core.engines import MEMORY_PER_PIXEL, estimator_memory
from pervfi_core.pipeline.memory import memory_required
from testkit.nodes import run_node


@pytest.fixture
def managed(fake_comfyui):
    """The loaders' outputs inside (fake) ComfyUI: the training-free engine and DIS, each in a patcher."""
    model, = run_node(PerVFILoadModel, checkpoint="training-free", dtype="auto")
    flow_model, = run_node(PerVFILoadFlowModel, estimator="dis", checkpoint="default")
    return model, flow_model


def test_loaders_return_core_model_patchers_on_the_managers_devices(managed, fake_comfyui):
    model, flow_model = managed
    for patcher, wrapper in ((model, rt.PerVFIGenerator), (flow_model, rt.PerVFIMotion)):
        assert isinstance(patcher, fake_comfyui.CoreModelPatcher)  # CoreModelPatcher where ComfyUI has one
        assert isinstance(patcher.model, wrapper) and patcher.model.device == torch.device("cpu")
        assert patcher.load_device == torch.device("cpu") and patcher.offload_device == torch.device("cpu")
    assert rt.unwrap(model).name == "training-free" and rt.unwrap(flow_model).name == "dis"
    assert patcher.model_dtype() == torch.float32


def test_without_core_model_patcher_the_plain_one_is_used(fake_comfyui):
    import sys

    del sys.modules["comfy.model_patcher"].CoreModelPatcher  # an older ComfyUI
    model, = run_node(PerVFILoadModel, checkpoint="training-free", dtype="auto")
    assert type(model) is fake_comfyui.ModelPatcher


def test_stand_alone_the_loaders_return_plain_engines():
    model, = run_node(PerVFILoadModel, checkpoint="training-free", dtype="auto")
    assert rt.unwrap(model) is model and model.name == "training-free"
    assert rt.prepare(model, memory_required=10 ** 9) == [model]  # nothing to load


def test_every_model_node_asks_the_manager_with_a_frame_size_estimate(clip, managed, fake_comfyui):
    model, flow_model = managed
    engine, est = rt.unwrap(model), rt.unwrap(flow_model)
    h, w = clip.shape[1:3]
    fused = memory_required(h, w, engine=engine, estimator=est)
    assert fused == MEMORY_PER_PIXEL["training-free"] * h * w  # DIS puts nothing on the device
    run_node(PerVFIInterpolate, frames=clip, model=model, flow_model=flow_model, multiplier=2, tau=0.3, seed=0)
    flow, = run_node(PerVFIFlowEstimation, frames=clip, flow_model=flow_model)
    blend, _ = run_node(PerVFIASBBlend, frames=clip, flow=flow, model=model, multiplier=4)
    run_node(PerVFIFlowDecode, blend=blend, model=model, tau=0.3, seed=0)
    video = rt.make_video(clip, 12, None)
    run_node(PerVFIInterpolateVideo, video=video, model=model, flow_model=flow_model, multiplier=2, tau=0.3, seed=0)
    loads = [([rt.unwrap(p) for p in patchers], need, full) for patchers, need, full in fake_comfyui.loads]
    x4 = MEMORY_PER_PIXEL["training-free"] * 3 * h * w  # three new frames per call
    assert loads == [([engine, est], fused, True), ([est], estimator_memory(est, h, w), True),
                     ([engine], x4, True), ([engine], x4, True), ([engine, est], fused, True)]


def test_the_engine_runs_where_the_manager_put_it_this_time(managed, fake_comfyui):
    """The device is read from the engine's placement after loading, not remembered from an earlier run."""
    model, _ = managed
    engine, = rt.prepare(model, memory_required=1)
    engine._where = torch.empty(0, device="meta")  # as if the manager had moved it (no second device here)
    assert rt.hooks(1, model=model).device == torch.device("meta")
    engine._where = torch.empty(0)
    assert rt.hooks(1, model=model).device == torch.device("cpu")


def test_dtype_auto_follows_what_comfyui_finds_fast(fake_comfyui):
    cpu = torch.device("cpu")
    assert rt.resolve_dtype("auto", cpu) == torch.float32
    fake_comfyui.fp16 = True
    assert rt.resolve_dtype("auto", cpu) == torch.float16
    fake_comfyui.bf16 = True  # bfloat16 first: float32's range for the exponential splatting weights
    assert rt.resolve_dtype("auto", cpu) == torch.bfloat16
    assert rt.resolve_dtype("float32", cpu) == torch.float32  # an explicit choice wins


def test_the_normalizing_flow_decoder_stays_float32_in_half_precision(fake_comfyui, parity_dir, tmp_path):
    import shutil

    fake_comfyui.bf16 = True
    folder = tmp_path / "models" / "pervfi"
    folder.mkdir(parents=True)
    shutil.copy(parity_dir / "weights" / "pervfi_v00.safetensors", folder / "v00.safetensors")
    model, = run_node(PerVFILoadModel, checkpoint="v00.safetensors", dtype="auto")
    engine = rt.unwrap(model)
    assert engine.dtype == torch.bfloat16 and next(engine.network.condFLownet.parameters()).dtype == torch.float32

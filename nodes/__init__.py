"""PerVFI ComfyUI nodes on ComfyUI's V3 node API: thin adapters over :mod:`pervfi_core.pipeline`.

Node ids start with ``PerVFI`` (kept from the first releases, so saved workflows load); the nodes sit in
``video/PerVFI`` beside core's frame interpolation, the loaders in ``model/loaders/PerVFI``. Custom types
passed between them: ``PERVFI_MODEL`` (the engine), ``PERVFI_FLOW_MODEL`` (motion estimator),
``PERVFI_FLOW`` (optical flow of every consecutive pair), ``PERVFI_BLEND`` (asymmetric blends of every new
frame, ready for decoding). Inside ComfyUI, PERVFI_MODEL and PERVFI_FLOW_MODEL are ModelPatchers (ComfyUI's
model manager loads and offloads them); stand-alone they are the plain engines.

ComfyUI reads :func:`comfy_entrypoint` (re-exported by the pack's ``__init__.py``); the oldest ComfyUI it
supports is 0.14.0, the first whose V3 schema has ``ControlAfterGenerate`` (the seed's ``fixed`` default;
``search_aliases`` came in 0.11.0; tests/nodes/test_real_comfy_api.py against each version's ``comfy_api``).
"""
from .comfy import ComfyExtension
from .interpolate import PerVFIInterpolate
from .loaders import PerVFILoadFlowModel, PerVFILoadModel
from .stages import PerVFIASBBlend, PerVFIFlowDecode, PerVFIFlowEstimation, PerVFIFlowToImage
from .video import PerVFIInterpolateVideo

NODES = (
    PerVFILoadModel,
    PerVFILoadFlowModel,
    PerVFIFlowEstimation,
    PerVFIASBBlend,
    PerVFIFlowDecode,
    PerVFIInterpolate,
    PerVFIInterpolateVideo,
    PerVFIFlowToImage,
)
OLDEST_COMFYUI = "0.14.0"


class PerVFIExtension(ComfyExtension):
    async def get_node_list(self):
        return list(NODES)


async def comfy_entrypoint() -> PerVFIExtension:
    return PerVFIExtension()


__all__ = ["NODES", "OLDEST_COMFYUI", "PerVFIExtension", "comfy_entrypoint"]

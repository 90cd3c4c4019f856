"""PerVFI ComfyUI nodes: thin adapters over :mod:`pervfi_core.pipeline`.

Node ids start with ``PerVFI``; every node sits in a ``PerVFI`` category. Custom types passed
between them: ``PERVFI_MODEL`` (generator), ``PERVFI_FLOW_MODEL`` (motion estimator),
``PERVFI_FLOW`` (flows of every consecutive pair), ``PERVFI_BLEND`` (asymmetric blends of every
new frame, ready for decoding). Inside ComfyUI, PERVFI_MODEL and PERVFI_FLOW_MODEL are ModelPatchers
(ComfyUI's model manager loads and offloads them); stand-alone they are the plain engines.
"""
from .interpolate import PerVFIInterpolate
from .loaders import PerVFILoadFlowModel, PerVFILoadModel
from .stages import PerVFIASBBlend, PerVFIFlowDecode, PerVFIFlowEstimation, PerVFIFlowToImage
from .video import PerVFIInterpolateVideo

_NODES = (
    PerVFILoadModel,
    PerVFILoadFlowModel,
    PerVFIFlowEstimation,
    PerVFIASBBlend,
    PerVFIFlowDecode,
    PerVFIInterpolate,
    PerVFIInterpolateVideo,
    PerVFIFlowToImage,
)

NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in _NODES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.__name__: cls.DISPLAY_NAME for cls in _NODES}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

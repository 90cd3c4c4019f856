"""ComfyUI entry point of the PerVFI node pack.

ComfyUI imports this folder as a package and calls ``comfy_entrypoint`` (its V3 node API), which returns
the extension listing the nodes. The stand-alone package ``pervfi_core`` beside this file is made
importable under its own name (one copy shared by the nodes and the command line). Nothing else
happens here: the loader nodes register the model folders when ComfyUI asks for their choices.
"""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.append(_here)  # appended: never shadows ComfyUI's own modules (e.g. its nodes.py)

if __package__:  # imported by ComfyUI as the package of this folder
    from .nodes import comfy_entrypoint  # noqa: E402

    __all__ = ["comfy_entrypoint"]

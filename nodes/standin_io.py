"""A stand-in for the part of ComfyUI's V3 node API (``comfy_api.latest.io``) the pack uses, outside ComfyUI.

Inside ComfyUI the nodes are built on the real API (:mod:`nodes.comfy` picks it). Outside (tests, scripts)
these classes only record what a schema declares, so that the same node classes can be imported, their
schemas read and their ``execute`` called; ComfyUI itself is never needed for that. Each input keeps its
``io_type``, ``id``, ``optional`` flag and the keyword arguments it was given (``options``, ``default``,
``min``, ``max``, ``tooltip``...) as attributes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ControlAfterGenerate(str, Enum):
    fixed = "fixed"
    increment = "increment"
    decrement = "decrement"
    randomize = "randomize"


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"


class HiddenHolder:
    """What ``cls.hidden`` holds while a node runs: the node's id and the prompt (None stand-alone)."""

    def __init__(self, unique_id=None, prompt=None):
        self.unique_id, self.prompt = unique_id, prompt


class _Port:
    io_type = None

    def __init__(self, id=None, display_name=None, optional=False, tooltip=None, **kw):
        self.id, self.display_name, self.optional, self.tooltip = id, display_name, optional, tooltip
        self.__dict__.update(kw)


def _type(io_type: str):
    class Type:
        class Input(_Port):
            pass

        class Output(_Port):
            pass

    Type.io_type = Type.Input.io_type = Type.Output.io_type = io_type
    return Type


class Combo(_type("COMBO")):
    class Input(_Port):
        io_type = "COMBO"

        def __init__(self, id, options=None, **kw):
            super().__init__(id, options=list(options or []), **kw)


Int, Float, String, Boolean = _type("INT"), _type("FLOAT"), _type("STRING"), _type("BOOLEAN")
Image, Mask, Video = _type("IMAGE"), _type("MASK"), _type("VIDEO")


def Custom(io_type: str):  # noqa: N802 - the API's spelling
    return _type(io_type)


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    search_aliases: list = field(default_factory=list)
    is_output_node: bool = False


class NodeOutput:
    def __init__(self, *args: Any, ui=None):
        self.args, self.ui = args, ui

    @property
    def result(self):
        return self.args if self.args else None


class ComfyNode:
    """Base of a node: ``define_schema`` and ``execute`` are classmethods, as in ComfyUI's V3 API."""

    hidden = HiddenHolder()

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError


class ComfyExtension:
    async def on_load(self) -> None:
        return None

    async def get_node_list(self) -> list:
        raise NotImplementedError

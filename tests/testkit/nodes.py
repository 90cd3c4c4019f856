"""Helpers of the node tests: call a node class the way ComfyUI does."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "example_workflows" / "inputs" / "pervfi_bunny_192x108.mp4"


def schema_inputs(cls) -> dict:
    """``{input id: input}`` of a node's V3 schema."""
    return {i.id: i for i in cls.define_schema().inputs}


def validate_inputs(cls, kwargs: dict) -> None:
    """What ComfyUI checks before it runs a node: required inputs, combo values, number ranges, then the
    node's own ``validate_inputs`` (which then replaces the built-in checks of the inputs it takes)."""
    inputs = schema_inputs(cls)
    own = cls.__dict__.get("validate_inputs")
    for name, spec in inputs.items():
        if name not in kwargs:
            assert spec.optional, f"{cls.__name__}: missing required input {name!r}"
            continue
        value = kwargs[name]
        if value is None or own is not None:  # fed by a link: ComfyUI checks only the constants of a prompt
            continue
        if spec.io_type == "COMBO":
            assert value in spec.options, f"{cls.__name__}.{name}: {value!r} not in {spec.options}"
        elif spec.io_type in ("INT", "FLOAT"):
            lo, hi = getattr(spec, "min", None), getattr(spec, "max", None)
            assert (lo is None or lo <= value) and (hi is None or value <= hi), f"{name}={value} out of range"
    unknown = set(kwargs) - set(inputs)
    assert not unknown, f"{cls.__name__}: unknown inputs {unknown}"
    if own is not None:
        verdict = cls.validate_inputs(**kwargs)
        assert verdict is True, f"{cls.__name__}: refused at validation: {verdict}"


def run_node(cls, *, hidden=None, **kwargs):
    """Validate like ComfyUI, call ``execute`` (``hidden``: a HiddenHolder, e.g. the node's id), check the arity."""
    from nodes.standin_io import HiddenHolder

    validate_inputs(cls, kwargs)
    before = cls.__dict__.get("hidden")
    cls.hidden = hidden or HiddenHolder()
    try:
        out = cls.execute(**kwargs)
    finally:
        if before is None:
            del cls.hidden
        else:
            cls.hidden = before
    values = out.args
    assert isinstance(values, tuple) and len(values) == len(cls.define_schema().outputs)
    return values

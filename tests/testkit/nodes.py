"""Helpers of the node tests: call a node class the way ComfyUI does."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "example_workflows" / "inputs" / "pervfi_bunny_192x108.mp4"


def validate_inputs(cls, kwargs: dict) -> None:
    """What ComfyUI checks before it runs a node: required inputs, combo values, number ranges."""
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            if name not in kwargs:
                assert section == "optional", f"{cls.__name__}: missing required input {name!r}"
                continue
            kind, opts = entry[0], (entry[1] if len(entry) > 1 else {})
            value = kwargs[name]
            if value is None:  # fed by a link: ComfyUI checks only the constants of a prompt
                continue
            if isinstance(kind, (list, tuple)):
                assert value in kind, f"{cls.__name__}.{name}: {value!r} not in {kind}"
            elif kind in ("INT", "FLOAT"):
                assert opts.get("min", value) <= value <= opts.get("max", value), f"{name}={value} out of range"
    unknown = set(kwargs) - set(spec.get("required", {})) - set(spec.get("optional", {})) - set(spec.get("hidden", {}))
    assert not unknown, f"{cls.__name__}: unknown inputs {unknown}"


def run_node(cls, **kwargs):
    """Validate like ComfyUI, call ``FUNCTION`` on a fresh instance, check the output arity."""
    validate_inputs(cls, kwargs)
    out = getattr(cls(), cls.FUNCTION)(**kwargs)
    assert isinstance(out, tuple) and len(out) == len(cls.RETURN_TYPES)
    return out

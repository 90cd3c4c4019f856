"""Build hook (everything else is in pyproject.toml): the wheel carries the weights manifest and the
embedded default weights.

``weights_manifest.json`` and ``weights/`` live at the repository root, where a checkout reads them
(pervfi_core/weights/manifest.py). They are outside the package, so package data cannot name them;
this build step copies them into ``pervfi_core/_data/`` of the wheel, where an installed ``pervfi``
finds them (the same lookup, second place). What is copied: the manifest, every file it lists as
``embedded``, and the model cards beside them. An editable install reads the checkout itself.
"""
from __future__ import annotations

import json
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
MANIFEST = "weights_manifest.json"


def data_files() -> list[str]:
    """Paths, relative to the repository root, that the installed package needs at run time."""
    doc = json.loads((ROOT / MANIFEST).read_text(encoding="utf-8"))
    embedded = [src["path"] for entry in doc.get("entries", []) for src in entry.get("sources", [])
                if src.get("type") == "embedded"]
    cards = sorted(f"weights/{p.name}" for p in (ROOT / "weights").glob("*.md"))  # a model card per embedded model
    return [MANIFEST, *sorted(set(embedded)), *cards]


class BuildWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in data_files():
            source = ROOT / name
            if not source.is_file():  # a wheel without its default weights would fail only when first used
                raise FileNotFoundError(f"{name} is missing from the source tree; it must ship in the wheel")
            dest = Path(self.build_lib) / "pervfi_core" / "_data" / name
            self.mkpath(str(dest.parent))
            self.copy_file(str(source), str(dest))


setup(cmdclass={"build_py": BuildWithData})

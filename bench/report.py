"""What a bench script does with its result: the markdown lines written to one file (``bench/results/*.md``,
which run_all.py assembles into BENCHMARKS.md) and printed, and, on request, the raw figures as JSON."""
from __future__ import annotations

import json
from pathlib import Path


def write_report(out: Path, lines: list[str], *, data=None, json_path: Path | None = None) -> None:
    """Write ``lines`` to ``out`` (its folder made), print them; ``data`` as JSON to ``json_path`` when given."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if json_path is not None:
        Path(json_path).write_text(json.dumps(data, indent=1, default=str))

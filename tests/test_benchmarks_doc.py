"""BENCHMARKS.md is what bench/run_all.py assembles from bench/results: a section edited in one place and not the
other would be lost or come back stale at the next run."""
from __future__ import annotations

import sys

from testkit.clips import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import run_all  # noqa: E402


def test_every_assembled_section_is_in_benchmarks_md_as_written_and_nothing_else_is():
    doc = (ROOT / "BENCHMARKS.md").read_text()
    sections = run_all.sections()
    stale = [name for name, text in sections.items() if text not in doc]
    assert not stale, f"bench/results sections not in BENCHMARKS.md as written: {stale}"
    body = doc[doc.index("## What the figures decide"):]
    assert body == "\n".join(sections.values()), "BENCHMARKS.md holds text that no bench/results section has"

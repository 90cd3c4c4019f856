"""``interpolate --batch`` without Ray: every input of a list, one after another in this process."""
from __future__ import annotations

import itertools

import cv2

from pervfi_core.cli import main
from pervfi_core.video import open_input
from testkit.clips import SAMPLE
from testkit.frames import ENGINE, read_frames


def test_a_list_of_inputs_without_ray(tmp_path, capsys, one_thread):
    frames = list(itertools.islice(open_input(SAMPLE), 6))
    for name, part in (("a", frames[:3]), ("b", frames[3:])):
        (tmp_path / name).mkdir()
        for i, frame in enumerate(part):
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), frame[:, :, ::-1])
    (tmp_path / "inputs.txt").write_text("a\nb\n")
    rc = main(["interpolate", str(tmp_path / "inputs.txt"), str(tmp_path / "out"), "--batch", "--out-ext", "frames",
               "--model", ENGINE, "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "done: 2 output(s), 10 frames" in err
    for name, part in (("a", frames[:3]), ("b", frames[3:])):
        out = read_frames(tmp_path / "out" / name)
        assert len(out) == 5 and all((o == f[:, :, ::-1]).all() for o, f in zip(out[::2], part))  # inputs kept

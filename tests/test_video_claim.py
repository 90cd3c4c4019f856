"""Nothing left behind: children that die with their parent, one writer per output, stale temporary
names removed (never those of a live run), hidden names that fit any legal output name."""
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pervfi_core.errors import InputError
from pervfi_core.video import OutputLock, open_output, remove_stale
from pervfi_core.video.claim import NAME_MAX, pid_alive, side_name, temp_name
from testkit.cli import cli_env, leftovers, lock_held_elsewhere

# A parent that starts a long-lived child through process.Child (from the main thread: the parent-death
# signal; from a worker thread: the watchdog), prints the child's pid and waits to be killed.
PARENT = """
import sys, threading, time
from pervfi_core.video.process import Child, uses_parent_death_signal

def start():
    child = Child([sys.executable, "-c", "import time; time.sleep(120)"])
    print(child.pid, uses_parent_death_signal(), flush=True)

if sys.argv[1] == "thread":
    worker = threading.Thread(target=start)
    worker.start()
    worker.join()  # the thread that started the child is gone before the parent dies
else:
    start()
time.sleep(120)
"""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL of the parent")
@pytest.mark.parametrize("where", ["main", "thread"])
def test_children_die_with_a_killed_parent(where):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, where], stdout=subprocess.PIPE, text=True, env=cli_env())
    pid, by_signal = parent.stdout.readline().split()
    child = int(pid)
    assert by_signal == str(where == "main" and sys.platform.startswith("linux"))
    time.sleep(0.2)
    assert pid_alive(child)  # a worker thread that ended does not take the child with it
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child)


def test_stale_partials_of_dead_runs_go_live_ones_stay(tmp_path):
    dead = _dead_pid()
    # A dead pid here, but its output is locked by a live run (another machine on a shared disk).
    with lock_held_elsewhere(tmp_path / "d.mp4"):
        shared = tmp_path / f".d.pervfi-partial-{dead}.mp4"
        shared.write_bytes(b"written elsewhere")
        stale = [tmp_path / f".a.pervfi-partial-{dead}.mp4", tmp_path / f".frames.pervfi-partial-{dead}",
                 tmp_path / f".b.pervfi-old-{dead}"]
        stale[0].write_bytes(b"half an mp4")
        for folder in stale[1:]:
            folder.mkdir()
            (folder / "frame_000000.png").write_bytes(b"png")
        live = tmp_path / f".c.pervfi-partial-{os.getppid()}.mp4"  # pytest's parent is alive
        live.write_bytes(b"being written")
        (tmp_path / "mine.mp4").write_bytes(b"a user's file")
        assert sorted(remove_stale(tmp_path)) == sorted(stale)
        assert leftovers(tmp_path) == sorted([live.name, shared.name, ".d.pervfi-lock.mp4", "mine.mp4"])
    assert remove_stale(tmp_path) == [shared]  # its run is gone now
    # A killed run's lock file is left behind too; the next run in the folder removes it.
    (tmp_path / ".e.pervfi-lock.mp4").write_text("12345")
    remove_stale(tmp_path)
    assert leftovers(tmp_path) == sorted([live.name, "mine.mp4"])


def test_the_next_writer_in_a_folder_removes_stale_partials(tmp_path):
    stale = tmp_path / f".o.pervfi-partial-{_dead_pid()}.mp4"
    stale.write_bytes(b"left by a killed run")
    w = open_output(tmp_path / "frames", width=8, height=8, fps=Fraction(25))
    assert not stale.exists()
    w.write(np.zeros((8, 8, 3), np.uint8))
    w.close()
    assert leftovers(tmp_path) == ["frames", "frames/frame_000000.png"]


def test_lock_is_exclusive_across_processes_reentrant_within_one_and_leaves_nothing(tmp_path):
    out = tmp_path / "sub" / "o.mp4"  # its folder does not exist yet
    with lock_held_elsewhere(out) as holder:
        with pytest.raises(InputError, match=rf"being written by another run \(pid {holder}\)"):
            OutputLock(out).acquire()
        assert leftovers(tmp_path) == ["sub", "sub/.o.pervfi-lock.mp4"]
    assert leftovers(tmp_path) == []  # the holder's exit removed its lock file and the folder it made
    with OutputLock(out):
        w = open_output(out, width=8, height=8, fps=Fraction(25))  # the same process: re-entrant
        w.write(np.zeros((8, 8, 3), np.uint8))
        w.close()
        assert (tmp_path / "sub" / ".o.pervfi-lock.mp4").exists()  # still held by the outer claim
    assert leftovers(tmp_path) == ["sub", "sub/o.mp4"]


@pytest.mark.parametrize("suffix", [".mp4", ""])
def test_hidden_names_fit_the_longest_legal_output_name(tmp_path, suffix):
    name = "é" * ((NAME_MAX - len(suffix)) // 2) + suffix  # two bytes a character: as long as it may be
    output = tmp_path / name
    assert len(os.fsencode(output.name)) <= NAME_MAX
    for side in (temp_name(output), temp_name(output, "old"), side_name(output, "lock")):
        assert len(os.fsencode(side.name)) <= NAME_MAX and side.name.endswith(output.suffix)
    w = open_output(output, width=8, height=8, fps=Fraction(25))
    w.write(np.zeros((8, 8, 3), np.uint8))
    w.close()
    assert leftovers(tmp_path)[0] == name

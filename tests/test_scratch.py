"""Scratch folders: removed after use, and swept once their owner is gone, however it died."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import ROOT

from grader.scratch import ScratchFolder, sweep

OWNER = """
import sys, time
from grader.scratch import ScratchFolder
folder = ScratchFolder("owner")
(folder.path / "data").write_text("x")
print(folder.path, flush=True)
time.sleep(120)
"""


def test_a_scratch_folder_is_removed_with_its_lock_after_use(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    with ScratchFolder("grade") as folder:
        assert folder.parent == tmp_path and folder.is_dir()
        assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name, f"{folder.name}.lock"]
    assert list(tmp_path.iterdir()) == []


def test_a_killed_owner_s_folder_is_swept_and_a_living_one_s_is_kept(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        folder = Path(owner.stdout.readline().strip())
        assert folder.parent == tmp_path and (folder / "data").is_file()
        assert sweep(tmp_path) == []
        assert folder.is_dir()
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    assert sweep(tmp_path) == [folder]
    assert list(tmp_path.iterdir()) == []

"""A checkpoint that cannot be written (a full disk) is one line naming it (issue 30): no traceback, no
`<step>.incomplete` folder left, and `checkpoints/last` still the one before, from which `--resume
latest` continues. Through the real focus-train on a small tmpfs (mounted in a user namespace of its
own), and in process with a writer that fails as a full disk does where no namespace can be made."""
from __future__ import annotations

import builtins
import errno
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from focusclip.core.errors import FocusError
from focusclip.training import checkpoint as ck
from focusclip.training.text import load_tokenizer
from tests.conftest import REPO, console_script
from tests.eval.tiny_models import save_tiny_checkpoint
from tests.training.fixtures import make_world, tiny_overrides

NO_SPACE = "no space left on the device while writing this checkpoint"


class _FullDisk:
    """A file that takes `room` bytes, then fails each write as a full disk does (ENOSPC)."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        if n > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= n
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def _saved(tmp_path: Path):
    """A run with checkpoint 3 (and last/), and what save_checkpoint needs to write the next one."""
    run = tmp_path / "run"
    last = save_tiny_checkpoint(run, step=3).parent / ck.LAST
    return run, ck.load_model(last), load_tokenizer(last)


def _after_failure(run: Path, step: int) -> None:
    root = run / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["3", ck.LAST]          # no 6, no 6.incomplete
    assert json.loads((root / ck.LAST / ck.PROGRESS).read_text())["step"] == 3
    assert ck.load_state(ck.latest_checkpoint(run)) == {"step": 3, "epoch": 0}


def test_a_full_disk_in_torch_save_is_one_line_and_leaves_the_last_checkpoint(tmp_path, monkeypatch):
    """torch.save reports a failed write as `RuntimeError: [enforce fail …] unexpected pos`; the
    OSError behind it is what the user sees."""
    run, model, tok = _saved(tmp_path)
    monkeypatch.setattr(ck, "open", lambda path, mode="r": _FullDisk(builtins.open(path, mode), 1000), raising=False)
    with pytest.raises(FocusError) as err:
        ck.save_checkpoint(run, 6, model, tok, "model: {name: tiny-clip}\n", {"step": 6, "epoch": 1,
                                                                               "t": torch.zeros(10_000)})
    assert str(err.value) == (f"{run}/checkpoints/6: {NO_SPACE}; checkpoints/last, the checkpoint before it, is "
                              "kept (free some space or choose an output on another disk, then rerun with "
                              "--resume latest)")
    _after_failure(run, 6)


def test_a_full_disk_in_safetensors_is_one_line_and_leaves_the_last_checkpoint(tmp_path, monkeypatch):
    """safetensors' writer says the errno only in its text."""
    import transformers.modeling_utils as mu

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    run, model, tok = _saved(tmp_path)
    monkeypatch.setattr(mu, "safe_save_file", full)
    with pytest.raises(FocusError, match=f"^{run}/checkpoints/6: {NO_SPACE}; checkpoints/last"):
        ck.save_checkpoint(run, 6, model, tok, None, {"step": 6, "epoch": 1})
    _after_failure(run, 6)


def test_a_bug_while_saving_stays_a_traceback_and_leaves_no_incomplete_folder(tmp_path, monkeypatch):
    run, model, tok = _saved(tmp_path)

    def bug(*args, **kwargs):
        raise RuntimeError("a bug in our code")

    monkeypatch.setattr(ck.torch, "save", bug)
    with pytest.raises(RuntimeError, match="a bug in our code"):
        ck.save_checkpoint(run, 6, model, tok, None, {"step": 6, "epoch": 1})
    _after_failure(run, 6)


def test_save_torch_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(ck, "open", lambda path, mode="r": _FullDisk(builtins.open(path, mode), 10), raising=False)
    with pytest.raises(OSError) as err:
        ck.save_torch({"t": torch.zeros(100)}, tmp_path / "s.pt")
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(tmp_path / "s.pt"))


# ------------------------------------------------------------------------ the real focus-train, a tmpfs


def _can_mount() -> bool:
    return bool(shutil.which("unshare")) and subprocess.run(["unshare", "-Urm", "true"],
                                                            capture_output=True).returncode == 0


def _train(world: dict, run: Path, *extra: str, prefix: tuple = ()) -> subprocess.CompletedProcess:
    sets = tiny_overrides(world, run, **{"train.max_steps": 6, "train.batch_size": 8, "train.checkpoint_every": 2,
                                         "train.keep_checkpoints": 0})
    return subprocess.run([*prefix, console_script("focus-train"), str(REPO / "configs/tiny-focusclip.yaml"),
                           *[x for s in sets for x in ("--set", s)], *extra], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _pages(files) -> int:
    """Bytes the files take on a tmpfs (whole 4 KiB pages)."""
    return sum(math.ceil(f.stat().st_size / 4096) * 4096 for f in files if f.is_file())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: the sizes of its checkpoints, and its final weights."""
    if not _can_mount():
        pytest.skip("no user namespaces here to mount a small tmpfs in")
    root = tmp_path_factory.mktemp("reference")
    world = make_world(root / "world", n_train=16, n_val=8)
    proc = _train(world, root / "run")
    assert proc.returncode == 0, proc.stderr
    return world, root / "run" / "checkpoints"


@pytest.mark.parametrize("fails_in", ["model.safetensors", ck.STATE])
def test_a_full_disk_through_focus_train_is_one_line_and_resume_latest_continues(reference, tmp_path, fails_in):
    """`checkpoints/` is a tmpfs with room for checkpoint 2 and for checkpoint 4 up to half of
    `fails_in` (files are written in the order config, weights, tokenizer, card, state)."""
    world, ref = reference
    files = sorted(p for p in (ref / "4").rglob("*") if p.is_file())
    before = [f for f in files if f.stat().st_mtime_ns < (ref / "4" / fails_in).stat().st_mtime_ns]
    room = _pages((ref / "2").rglob("*")) + _pages(before) + (ref / "4" / fails_in).stat().st_size // 2
    run, kept = tmp_path / "run", tmp_path / "kept"
    (run / "checkpoints").mkdir(parents=True)
    kept.mkdir()
    mount = ("unshare", "-Urm", "sh", "-c", f'mount -t tmpfs -o size={room} tmpfs "$0" && "$@"; rc=$?; '
             f'cp -a "$0/." {kept}; exit $rc', str(run / "checkpoints"))
    proc = _train(world, run, prefix=mount)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "enforce fail" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {run}/checkpoints/4: {NO_SPACE}; checkpoints/last, the checkpoint before it, is kept (free some "
        "space or choose an output on another disk, then rerun with --resume latest)")
    assert sorted(p.name for p in kept.iterdir()) == ["2", ck.LAST]        # no 4.incomplete
    assert json.loads((kept / ck.LAST / ck.PROGRESS).read_text())["step"] == 2
    if fails_in != ck.STATE:
        return
    (run / "checkpoints").rmdir()                                          # the mount point, empty again
    shutil.move(kept, run / "checkpoints")                                 # as if the disk had room now
    proc = _train(world, run, "--resume", "latest")
    assert proc.returncode == 0, proc.stderr
    resumed, uninterrupted = load_file(run / "checkpoints/6/model.safetensors"), load_file(ref / "6/model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)

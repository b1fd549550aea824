"""Resume states are unpickled without running code (issue 30): torch.load(weights_only=True) with
numpy's RNG state the only addition, so a `state.pt` whose pickle calls a function (dropped into a
copied or downloaded run folder) is refused before that function runs: one line, exit 1."""
from __future__ import annotations

import io
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch

from focusclip.core.errors import FocusError
from focusclip.training import checkpoint as ck
from focusclip.training.optim import rng_state
from focusclip.training.pretrain.loop import STATE, _resume
from tests.conftest import REPO, console_script
from tests.eval.tiny_models import save_tiny_checkpoint
from tests.training.fixtures import make_world, tiny_overrides


class _Calls:
    """Pickles as `func(*args)`: what unpickling it without restriction would call."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker) -> dict:
    return {"open": _Calls(open, str(marker), "w"), "os.system": _Calls(os.system, f"touch {marker}")}


def _hostile_state(path, payload) -> None:
    """A resume dict with every key focus-train checks, one value of which is `payload`."""
    torch.save({"optimizer": payload, "scheduler": {}, "step": 3, "epoch": 0, "micro_start": 0, "rng": []}, path)


@pytest.mark.parametrize("kind", ["open", "os.system"])
def test_a_state_that_would_run_code_is_one_line_through_focus_train(tmp_path, kind):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    last = save_tiny_checkpoint(run).parent / ck.LAST
    _hostile_state(ck.state_file(last), _payloads(marker)[kind])
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    world = make_world(tmp_path / "world", n_train=16, n_val=8)
    sets = [x for s in tiny_overrides(world, run) for x in ("--set", s)]
    proc = subprocess.run([console_script("focus-train"), str(REPO / "configs/tiny-focusclip.yaml"), *sets,
                           "--resume", "latest"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {ck.state_file(last)}: holds a Python object no focusclip state holds ("), lines
    assert "could run code, so it was not loaded" in lines[0]
    assert "Traceback" not in proc.stderr and "weights_only" not in proc.stderr
    assert not marker.exists()                                    # nothing in the pickle ran
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before   # refused before the run dir is touched


@pytest.mark.parametrize("kind", ["open", "os.system"])
def test_load_pickled_refuses_a_pickle_naming_a_function(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "state.pt"
    torch.save({"rng": [_payloads(marker)[kind]]}, path)
    with pytest.raises(FocusError, match=r"holds a Python object no focusclip state holds \((io\.open|posix\.system)\)"):
        ck.load_pickled(path)
    assert not marker.exists()


def test_the_pretraining_loop_starts_over_on_a_state_that_would_run_code(tmp_path):
    """`focus-train pretrain-*` treats a state it cannot continue as none (as a damaged one): the
    work folder is emptied and the run starts at step 0; the pickle never runs."""
    marker, tmp = tmp_path / "pwned", tmp_path / "vision.incomplete"
    tmp.mkdir()
    torch.save({"model": _payloads(marker)["open"], "step": 5, "options": {}}, tmp / STATE)
    assert _resume(tmp, None, None, None, options={}) == 0
    assert not marker.exists() and list(tmp.iterdir()) == []


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, torch.Tensor)):
        return type(a) is type(b) and a.dtype == b.dtype and bool((a == b).all())
    return a == b


def test_every_rng_state_comes_back_exactly(tmp_path):
    """What focus-train saves: python's tuple, numpy's (a uint32 key array), torch's ByteTensor."""
    np.random.seed(7)
    np.random.standard_normal()        # numpy holds a cached gaussian: its state's last two fields are set
    state = {"rng": [rng_state(), rng_state()], "step": 3}
    torch.save(state, tmp_path / "state.pt")
    assert _same(ck.load_pickled(tmp_path / "state.pt"), state)


def test_a_state_pickled_under_numpy_1_still_loads(tmp_path):
    """numpy 1 names the array rebuilder `numpy.core.multiarray._reconstruct` (numpy 2:
    `numpy._core…`); a state written then still resumes. Protocol-2 pickles spell globals as text, so
    the old name is written into the legacy (non-zip) format by replacing the new one."""
    state = {"rng": [rng_state()]}
    buf = io.BytesIO()
    torch.save(state, buf, _use_new_zipfile_serialization=False)
    new_name = np.zeros(1).__reduce__()[0].__module__.encode() + b"\n"
    assert buf.getvalue().count(new_name) == 1
    (tmp_path / "state.pt").write_bytes(buf.getvalue().replace(new_name, b"numpy.core.multiarray\n"))
    with pytest.raises(pickle.UnpicklingError):     # the premise: without our list torch refuses it
        torch.load(tmp_path / "state.pt", weights_only=True)
    assert _same(ck.load_pickled(tmp_path / "state.pt"), state)

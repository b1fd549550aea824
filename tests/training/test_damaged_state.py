"""A damaged resume state is one user error, whatever exception its bytes make the unpickler raise."""
from __future__ import annotations

import pytest

from focusclip.core.errors import FocusError
from focusclip.training import checkpoint as ck
from focusclip.training.resume import read_resume
from tests.eval.tiny_models import save_tiny_checkpoint
from tests.training.fixtures import damaged_pickles

GARBAGE = damaged_pickles()


def test_random_bytes_raise_more_than_the_unpickling_errors():
    """The premise: the kinds are not only pickle's own (so naming a few exception classes misses some)."""
    assert {"UnpicklingError", "IndexError"} <= set(GARBAGE), sorted(GARBAGE)


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_read_resume_names_the_damaged_state_for_every_kind(tmp_path, kind):
    last = save_tiny_checkpoint(tmp_path / "run").parent / "last"
    ck.state_file(last).write_bytes(GARBAGE[kind])
    with pytest.raises(FocusError, match="cannot read the resume state") as err:
        read_resume(tmp_path / "run", "latest")
    assert "state.pt" in str(err.value)

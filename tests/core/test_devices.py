"""`cpu_threads`: torch's thread count beside busy workers, the one guard every command uses."""
from __future__ import annotations

import pytest
import torch

from focusclip.core import devices
from focusclip.core.devices import cpu_threads


@pytest.fixture
def eight_cores(monkeypatch):
    """An 8-core machine whose torch runs 6 threads; the count put back after the test."""
    before = torch.get_num_threads()
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 8)
    torch.set_num_threads(6)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("workers,inside", [(1, 6),     # 8 − 1 = 7 would raise it: never more than it had
                                            (3, 5),     # 8 − 3
                                            (8, 1),     # the workers take every core: at least 1
                                            (20, 1),
                                            (0, 6)])    # no workers: the main process decodes, nothing changes
def test_cpu_leaves_the_workers_their_cores(eight_cores, workers, inside):
    with cpu_threads(torch.device("cpu"), workers):
        assert torch.get_num_threads() == inside
    assert torch.get_num_threads() == 6


def test_cpu_restores_the_count_when_the_block_raises(eight_cores):
    with pytest.raises(KeyError):
        with cpu_threads(torch.device("cpu"), 3):
            assert torch.get_num_threads() == 5
            raise KeyError("a bug in the block")
    assert torch.get_num_threads() == 6


def test_cuda_changes_nothing(eight_cores, monkeypatch):
    calls = []
    with monkeypatch.context() as m:
        m.setattr(devices.torch, "set_num_threads", calls.append)
        with cpu_threads(torch.device("cuda", 0), 3):        # a device object only: no GPU needed
            assert torch.get_num_threads() == 6
    assert torch.get_num_threads() == 6 and calls == []

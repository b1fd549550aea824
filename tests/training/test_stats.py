"""The training loop's running numbers (StepStats): each row's means, the model's scalars and the
first non-finite step, against the same numbers kept by hand in numpy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from focusclip.training.dist import Dist
from focusclip.training.stats import StepStats
from focusclip.training.steps import StepResult

KEYS = ("loss", "loss_image_text", "loss_image_heatmap", "grad_norm")


def result(loss: float, image_text: float, image_heatmap: float, grad_norm: float) -> StepResult:
    parts = {"image_text": torch.tensor(image_text), "image_heatmap": torch.tensor(image_heatmap)}
    finite = torch.tensor(math.isfinite(loss) and math.isfinite(grad_norm))
    return StepResult(torch.tensor(loss), parts, torch.tensor(grad_norm), finite, samples=8)


def steps(seed: int, n: int) -> np.ndarray:
    """[n, 4] finite values in the order (loss, image_text, image_heatmap, grad_norm)."""
    return np.random.default_rng(seed).uniform(0.1, 5.0, size=(n, 4)).astype(np.float32)


def test_each_read_gives_the_means_of_its_own_window():
    stats = StepStats(KEYS, torch.device("cpu"))
    values = steps(0, 7)
    for step, row in enumerate(values[:4], start=1):
        stats.add(step, result(*row))
    w = stats.read(Dist(), torch.tensor(0.25), torch.tensor(0.07))
    assert list(w.means) == list(KEYS)
    np.testing.assert_allclose([w.means[k] for k in KEYS], values[:4].mean(axis=0), rtol=1e-6)
    assert w.alpha == pytest.approx(0.25) and w.temperature == pytest.approx(0.07)
    assert w.bad_step is None
    for step, row in enumerate(values[4:], start=5):        # the next window starts from zero
        stats.add(step, result(*row))
    w = stats.read(Dist(), None, torch.tensor(0.05))
    np.testing.assert_allclose([w.means[k] for k in KEYS], values[4:].mean(axis=0), rtol=1e-6)
    assert w.alpha is None and w.temperature == pytest.approx(0.05)


def test_the_first_non_finite_step_is_kept_with_its_numbers():
    stats = StepStats(KEYS, torch.device("cpu"))
    values = steps(1, 6).astype(float)
    values[2, 3] = math.inf          # step 3: the gradient norm overflowed (an fp16 step)
    values[4, 0] = math.nan          # step 5: the loss too — later, so not the one reported
    for step, row in enumerate(values, start=1):
        stats.add(step, result(*row))
    w = stats.read(Dist(), None, torch.tensor(1.0))
    assert w.bad_step == 3 and w.bad_norm == math.inf
    assert w.bad_loss == pytest.approx(values[2, 0], rel=1e-6)
    # a mean over a non-finite value is not a number to log: None; the others are still means
    assert w.means["grad_norm"] is None and w.means["loss"] is None
    np.testing.assert_allclose([w.means["loss_image_text"], w.means["loss_image_heatmap"]],
                               values[:, 1:3].mean(axis=0), rtol=1e-6)


def test_check_reports_a_bad_step_once_per_addition_and_nothing_when_all_is_finite():
    stats = StepStats(KEYS, torch.device("cpu"))
    assert stats.check(Dist()) is None                      # nothing added
    stats.add(1, result(*steps(2, 1)[0]))
    assert stats.check(Dist()) is None                      # finite
    stats.add(2, result(math.nan, 1.0, 1.0, 2.0))
    w = stats.check(Dist())
    assert (w.bad_step, math.isnan(w.bad_loss), w.bad_norm) == (2, True, 2.0) and w.means == {}
    assert stats.check(Dist()) is None                      # nothing new since that check
    stats.add(3, result(*steps(3, 1)[0]))
    assert stats.check(Dist()).bad_step == 2                # the first bad step stays the first


def test_a_resumed_window_gives_the_row_an_uninterrupted_run_gives():
    values = steps(4, 5)
    whole = StepStats(KEYS, torch.device("cpu"))
    first = StepStats(KEYS, torch.device("cpu"))
    for step, row in enumerate(values, start=1):
        whole.add(step, result(*row))
        if step <= 2:
            first.add(step, result(*row))
    resumed = StepStats(KEYS, torch.device("cpu"))
    resumed.load_state(first.state())                       # a checkpoint after step 2
    for step, row in enumerate(values[2:], start=3):
        resumed.add(step, result(*row))
    a = whole.read(Dist(), None, torch.tensor(1.0))
    b = resumed.read(Dist(), None, torch.tensor(1.0))
    assert a.means == b.means
    np.testing.assert_allclose([b.means[k] for k in KEYS], values.mean(axis=0), rtol=1e-6)
    # a window saved with other columns (another loss configuration) is not mixed in
    other = StepStats(("loss", "grad_norm"), torch.device("cpu"))
    other.load_state(first.state())
    other.add(1, result(2.0, 0.0, 0.0, 4.0))
    assert other.read(Dist(), None, torch.tensor(1.0)).means == {"loss": 2.0, "grad_norm": 4.0}

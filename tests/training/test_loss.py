"""The losses against independent computations: pytorch-metric-learning's NT-Xent and a loop CLIP loss."""
from __future__ import annotations

import math

import pytest
import torch

from focusclip.training.loss import FocusLoss, clip_loss, clip_rows, nt_xent, nt_xent_rows
from focusclip.training.model import FocusOutput

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")


@pytest.mark.parametrize("n,d,t", [(2, 4, 0.5), (7, 16, 0.5), (32, 64, 0.5), (9, 8, 0.07)])
def test_nt_xent_equals_pml_self_supervised_loss(n, d, t):
    torch.manual_seed(n)
    a = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    ref = pml_losses.SelfSupervisedLoss(pml_losses.NTXentLoss(temperature=t))(a, b)
    ga, gb = torch.autograd.grad(ref, (a, b))
    ours = nt_xent(a, b, t)
    oa, ob = torch.autograd.grad(ours, (a, b))
    assert ours.item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(oa, ga, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(ob, gb, rtol=1e-7, atol=1e-10)


def test_nt_xent_counts_same_modality_negatives():
    """With identical a and b except one pair, a same-modality near-duplicate must raise the loss:
    pml (and the paper) pool the 2N embeddings, unlike CLIP's cross-modal loss."""
    torch.manual_seed(0)
    a = torch.randn(4, 8, dtype=torch.float64)
    b = a + 0.01 * torch.randn(4, 8, dtype=torch.float64)
    a_dup = a.clone()
    a_dup[1] = a_dup[0] + 1e-3    # two images nearly equal: a same-modality hard negative
    assert nt_xent(a_dup, b, 0.5) > nt_xent(a, b, 0.5)
    ref = pml_losses.SelfSupervisedLoss(pml_losses.NTXentLoss(temperature=0.5))(a_dup, b)
    assert nt_xent(a_dup, b, 0.5).item() == pytest.approx(ref.item(), rel=1e-9)


def test_clip_loss_equals_loop_computation():
    torch.manual_seed(1)
    n, t = 5, 0.3
    a, b = torch.randn(n, 6, dtype=torch.float64), torch.randn(n, 6, dtype=torch.float64)
    an = [x / x.norm() for x in a]
    bn = [x / x.norm() for x in b]
    s = [[float(an[i] @ bn[j]) / t for j in range(n)] for i in range(n)]
    i2t = sum(-s[i][i] + math.log(sum(math.exp(s[i][j]) for j in range(n))) for i in range(n)) / n
    t2i = sum(-s[j][j] + math.log(sum(math.exp(s[i][j]) for i in range(n))) for j in range(n)) / n
    assert clip_loss(a, b, t).item() == pytest.approx((i2t + t2i) / 2, rel=1e-12)


def _out(n=6, d=8, masked=True):
    torch.manual_seed(2)
    e = [torch.randn(n, d, dtype=torch.float64) for _ in range(3)]
    return FocusOutput(e[0], e[1], e[2] if masked else None, None, torch.tensor(0.5, dtype=torch.float64)), e


def test_focus_loss_is_the_weighted_sum_of_the_three_pairs():
    out, (img, txt, msk) = _out()
    total, parts = FocusLoss("ntxent", {"image_text": 1.0, "masked_image": 0.5, "masked_text": 2.0})(out)
    assert set(parts) == {"image_text", "masked_image", "masked_text"}
    want = nt_xent(img, txt, 0.5) + 0.5 * nt_xent(msk, img, 0.5) + 2.0 * nt_xent(msk, txt, 0.5)
    assert total.item() == pytest.approx(want.item(), rel=1e-12)
    assert parts["masked_image"].item() == pytest.approx(nt_xent(msk, img, 0.5).item(), rel=1e-12)


def test_focus_loss_without_masked_view_is_image_text_only():
    out, (img, txt, _) = _out(masked=False)
    total, parts = FocusLoss("clip")(out)
    assert list(parts) == ["image_text"]
    assert total.item() == pytest.approx(clip_loss(img, txt, 0.5).item(), rel=1e-12)


@pytest.mark.parametrize("whole,rows", [(nt_xent, nt_xent_rows), (clip_loss, clip_rows)])
def test_local_rows_against_the_pool_average_to_the_whole_batch_loss(whole, rows):
    """What each DDP rank computes: its rows against all rows (unit norm). With 3 equal shares the
    mean of the shares' losses is the loss of the whole batch; each share alone is not."""
    torch.manual_seed(4)
    a, b = (torch.nn.functional.normalize(torch.randn(9, 6, dtype=torch.float64), dim=-1) for _ in range(2))
    shares = [rows(a[r:r + 3], b[r:r + 3], a, b, r, 0.3) for r in (0, 3, 6)]
    assert (sum(shares) / 3).item() == pytest.approx(whole(a, b, 0.3).item(), rel=1e-12)
    assert all(abs(s.item() - whole(a, b, 0.3).item()) > 1e-3 for s in shares)


def test_a_temperature_per_pair_divides_each_pair_by_its_own_and_learns_from_it_alone():
    out, (img, txt, msk) = _out()
    taus = torch.tensor([0.5, 0.1, 0.3], dtype=torch.float64, requires_grad=True)   # PAIRS order
    total, parts = FocusLoss("ntxent")(out._replace(temperature=taus))
    want = {"image_text": nt_xent(img, txt, 0.5), "masked_image": nt_xent(msk, img, 0.1),
            "masked_text": nt_xent(msk, txt, 0.3)}
    for name, value in want.items():
        assert parts[name].item() == pytest.approx(value.item(), rel=1e-12), name
    assert total.item() == pytest.approx(sum(v.item() for v in want.values()), rel=1e-12)
    (grad,) = torch.autograd.grad(parts["masked_image"], taus)
    assert grad[1] != 0 and grad[0] == 0 and grad[2] == 0          # a pair's loss moves only its own τ
    # without the masked view only the image–text τ is read
    clip_only, (img2, txt2, _) = _out(masked=False)
    total, _ = FocusLoss("ntxent")(clip_only._replace(temperature=taus))
    assert total.item() == pytest.approx(nt_xent(img2, txt2, 0.5).item(), rel=1e-12)

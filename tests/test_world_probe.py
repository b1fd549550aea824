"""benchmarks/world_probe.py: its supervised ceiling, linear probe and summary do what they claim
(its bootstrap is focus_effect's, tested in test_focus_effect.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import REPO, load_benchmark


@pytest.fixture(scope="module")
def wp():
    return load_benchmark("world_probe")


def _quadrant_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """64×64 noise images whose class (0–3) is the one bright quadrant."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.rand(n, 3, 64, 64, generator=g) * 0.4 - 1.0
    for i, c in enumerate(y.tolist()):
        r, q = divmod(c, 2)
        x[i, :, 32 * r:32 * r + 32, 32 * q:32 * q + 32] += 1.2
    return x, y


@pytest.mark.slow
def test_the_supervised_ceiling_learns_what_the_pixels_show(wp):
    from focusclip.training.config import load_config

    cfg = load_config(REPO / "configs" / "mini-clip.yaml", ["optim.warmup_steps=10"])
    x, y = _quadrant_images(512, 0)
    xt, yt = _quadrant_images(256, 1)
    net = wp.supervised(cfg, x, y, 4, steps=120, seed=0)
    acc = (wp.logits(net, xt).argmax(1) == yt).float().mean().item()
    assert acc > 0.9, acc
    # the same model on shuffled labels cannot beat chance on fresh images by much
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(2))]
    net = wp.supervised(cfg, x, shuffled, 4, steps=120, seed=0)
    assert (wp.logits(net, xt).argmax(1) == yt).float().mean().item() < 0.45


def test_the_linear_probe_separates_separable_features(wp):
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=g) * 3

    def blobs(n, seed):
        gg = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 5, (n,), generator=gg)
        return centres[y] + torch.randn(n, 16, generator=gg), y

    f, y = blobs(400, 1)
    ft, yt = blobs(400, 2)
    head = wp.linear_probe(f, y, 5, seed=0)
    # the Bayes rule for equal isotropic blobs is the nearest centre: the probe must match it closely
    bayes = ((ft[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
    acc, best = (head(ft).argmax(1) == yt).float().mean().item(), (bayes == yt).float().mean().item()
    assert acc > best - 0.03, (acc, best)


def test_summarise_reports_recall_per_drawn_class(wp):
    truth = [0, 0, 1, 1, 1, 2]
    hits = {m: [1, 0, 1, 1, 0, 1] for m in [*wp.METHODS, "prompts_of_40", "ensemble_of_40"]}
    results = [{"seed": 0, "truth": truth, "drawn": ["a", "b", "c"], "hits": hits,
                "absent_share": {"prompts": 0.25, "ensemble": 0.5}}]
    s = wp.summarise(results)
    r = s["methods"]["probe"]
    assert r["top1"] == pytest.approx(4 / 6)
    assert r["recall"] == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 1.0})
    assert s["methods"]["ensemble_of_40"]["absent_share"] == 0.5
    md = wp.markdown(s)
    assert "| linear probe of CLIP's image embeddings | 66.7 [" in md

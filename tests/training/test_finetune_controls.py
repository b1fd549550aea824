"""The fine-tuning controls on their own: SigLIP's sigmoid loss against its definition written out
pair by pair, locking a tower but its last N layers, and WiSE-FT's interpolation."""
from __future__ import annotations

import math

import pytest
import torch

from focusclip.training.finetune import interpolate, lock_tower
from focusclip.training.loss import FocusLoss, siglip_loss
from focusclip.training.model import FocusCLIPModel, FocusOutput

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2)


def test_siglip_loss_is_the_papers_sum_over_pairs():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 8, generator=g, dtype=torch.float64), torch.randn(5, 8, generator=g, dtype=torch.float64)
    t, bias = 0.1, -3.0
    total = 0.0
    for i in range(5):
        for j in range(5):
            cos = float(a[i] @ b[j] / (a[i].norm() * b[j].norm()))
            z = 1.0 if i == j else -1.0
            total += -math.log(1 / (1 + math.exp(-z * (cos / t + bias))))
    assert siglip_loss(a, b, t, bias).item() == pytest.approx(total / 5, rel=1e-12)
    out = FocusOutput(a, b, None, None, torch.tensor(t, dtype=torch.float64), torch.tensor(bias, dtype=torch.float64))
    total_loss, parts = FocusLoss("siglip")(out)
    assert set(parts) == {"image_text"} and total_loss.item() == pytest.approx(total / 5, rel=1e-12)


@pytest.mark.parametrize("unlocked", [0, 1])
def test_lock_image_tower_but_its_last_layers(unlocked):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    dual = CLIPModel(CLIPConfig(text_config=dict(vocab_size=50, max_position_embeddings=16, **SMALL),
                                vision_config=dict(image_size=16, patch_size=8, **SMALL), projection_dim=8))
    model = FocusCLIPModel.from_dual(dual, None, image_size=16)
    frozen = lock_tower(model, "image", unlocked)
    learning = {n for n, p in model.named_parameters() if p.requires_grad}
    vision = {n for n, _ in model.named_parameters() if n.startswith(("dual.vision_model.", "dual.visual_projection."))}
    assert frozen == sum(p.numel() for n, p in model.named_parameters() if n in vision and n not in learning)
    assert {n for n in learning if n.startswith("dual.text_model.")}            # the text tower still learns
    if unlocked == 0:
        assert not learning & vision
    else:
        expect = {n for n in vision if ".layers.2." in n or "post_layernorm" in n or "visual_projection" in n}
        assert learning & vision == expect
        assert not any(".layers.0." in n or ".layers.1." in n or "embeddings" in n for n in learning & vision)


def test_wise_interpolation_ends_and_middle():
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(4, 4, generator=g), "ids": torch.arange(4)}
    tuned = {"w": torch.randn(4, 4, generator=g), "ids": torch.arange(4)}
    assert torch.equal(interpolate(base, tuned, 0.0)["w"], base["w"])
    assert torch.equal(interpolate(base, tuned, 1.0)["w"], tuned["w"])
    assert torch.equal(interpolate(base, tuned, 0.5)["w"], (base["w"] + tuned["w"]) / 2)
    assert torch.allclose(interpolate(base, tuned, 0.25)["w"], 0.75 * base["w"] + 0.25 * tuned["w"])
    assert torch.equal(interpolate(base, tuned, 0.3)["ids"], tuned["ids"])


def test_siglip_bias_is_frozen_unless_the_loss_is_siglips():
    from transformers import SiglipConfig, SiglipModel

    from focusclip.training.config import FocusConfig, LossConfig
    from focusclip.training.finetune import apply_locks

    for kind, frozen in (("siglip", {}), ("clip", {"logit_bias": 1})):
        dual = SiglipModel(SiglipConfig(text_config=dict(vocab_size=50, max_position_embeddings=16, **SMALL),
                                        vision_config=dict(image_size=16, patch_size=8, **SMALL)))
        model = FocusCLIPModel.from_dual(dual, None, image_size=16)
        assert apply_locks(model, FocusConfig(loss=LossConfig(kind=kind))) == frozen
        assert model.dual.logit_bias.requires_grad == (kind == "siglip")
        assert model.dual.logit_scale.requires_grad

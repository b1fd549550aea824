"""The model: the heatmap-weighted view, alpha's gradient, the CLIP variant, local pretrained weights."""
from __future__ import annotations

import pytest
import torch

from focusclip.core.errors import FocusError
from tests.conftest import REPO
from focusclip.training import load_checkpoint
from focusclip.training.config import load_config
from focusclip.training.factory import build_model, build_tokenizer, load_pretrained
from focusclip.training.loss import FocusLoss
from focusclip.training.text import train_wordpiece

torch.set_num_threads(1)
TEXTS = ["a person on the left", "a red figure stands", "one person in the picture, standing on the right"]


def _model(config="tiny-focusclip", *sets):
    cfg = load_config(REPO / "configs" / f"{config}.yaml", list(sets))
    tok = train_wordpiece(TEXTS, 200)
    torch.manual_seed(0)
    return build_model(cfg, tok, load_pretrained(cfg)), tok


def _batch(tok, n=4, s=64):
    g = torch.Generator().manual_seed(1)
    t = tok([TEXTS[i % 3] for i in range(n)], padding="longest", return_tensors="pt")
    return torch.randn(n, 3, s, s, generator=g), t["input_ids"], t["attention_mask"], torch.rand(n, s, s, generator=g)


def test_masked_view_is_image_times_alpha_plus_heatmap_in_pixel_space():
    model, _ = _model()
    assert model.alpha.item() == pytest.approx(0.5)
    x = torch.rand(2, 3, 64, 64) * 2 - 1                        # normalised with mean = std = 0.5
    raw = x * 0.5 + 0.5
    hm = torch.rand(2, 64, 64)
    want = (raw * (0.5 + hm[:, None] * 0.5) - 0.5) / 0.5
    torch.testing.assert_close(model.mask_pixels(x, hm), want)
    torch.testing.assert_close(model.mask_pixels(x, torch.ones(2, 64, 64)), x)          # person: unchanged
    torch.testing.assert_close(model.mask_pixels(x, torch.zeros(2, 64, 64)), (raw * 0.5 - 0.5) / 0.5)


def test_alpha_receives_gradients_from_the_masked_pairs():
    model, tok = _model()
    pixels, ids, mask, hm = _batch(tok)
    total, parts = FocusLoss()(model(pixels, ids, mask, hm))
    assert set(parts) == {"image_text", "masked_image", "masked_text"}
    total.backward()
    g = model.alpha_logit.grad
    assert g is not None and torch.isfinite(g) and g.abs() > 0


def test_clip_config_has_no_masked_branch():
    model, tok = _model("tiny-clip")
    assert model.alpha is None and not hasattr(model, "alpha_logit") and not hasattr(model, "masked_vision")
    assert not any("alpha" in k or "masked" in k for k in model.state_dict())
    pixels, ids, mask, _ = _batch(tok)
    out = model(pixels, ids, mask)                              # no heatmaps needed
    assert out.masked is None and out.alpha is None
    assert list(FocusLoss()(out)[1]) == ["image_text"]


def test_separate_masked_encoder_and_learnable_temperature():
    model, tok = _model("tiny-focusclip", "model.shared_encoder=false", "loss.learn_temperature=true")
    assert hasattr(model, "masked_vision") and model.log_temperature.requires_grad
    pixels, ids, mask, hm = _batch(tok)
    total, _ = FocusLoss()(model(pixels, ids, mask, hm))
    total.backward()
    assert model.masked_vision.proj.weight.grad.abs().sum() > 0 and model.log_temperature.grad.abs() > 0


def test_encoders_load_from_a_local_pretrained_folder(tmp_path):
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    vit = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             image_size=32, patch_size=8), add_pooling_layer=False)
    tok = train_wordpiece(TEXTS, 200)
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64), add_pooling_layer=False)
    vit.save_pretrained(tmp_path / "vit")
    bert.save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    model, tok2 = _model("tiny-focusclip", f"model.vision.pretrained={tmp_path / 'vit'}")
    torch.testing.assert_close(model.vision.vit.embeddings.patch_embeddings.projection.weight,
                               vit.embeddings.patch_embeddings.projection.weight)
    assert model.vision.interpolate                      # pretrained at 32 px, trained at 64 px
    cfg = load_config(REPO / "configs/tiny-focusclip.yaml", [f"model.text.pretrained={tmp_path / 'bert'}"])
    pre = load_pretrained(cfg)
    assert pre.sources["text"].to_dict() == {"kind": "folder", "name": str(tmp_path / "bert")}
    assert pre.sources["vision"].kind == "random"
    loaded_tok, source = build_tokenizer(cfg, pre, TEXTS)
    assert source == pre.sources["text"] and loaded_tok.get_vocab() == tok.get_vocab()
    m = build_model(cfg, loaded_tok, pre)
    torch.testing.assert_close(m.text.encoder.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)
    with pytest.raises(FocusError, match="model.vision.pretrained: vision tower: the folder .*nope does not exist"):
        _model("tiny-focusclip", f"model.vision.pretrained={tmp_path / 'nope'}")
    with pytest.raises(FocusError, match="holds no config.json"):
        _model("tiny-focusclip", f"model.vision.pretrained={tmp_path}")
    with pytest.raises(FocusError, match=r"a revision \(v2\) applies to hub ids"):
        _model("tiny-focusclip", f"model.vision.pretrained={tmp_path / 'vit'}", "model.vision.revision=v2")


def test_load_checkpoint_errors_are_user_errors(tmp_path):
    with pytest.raises(FocusError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(FocusError, match="no model.safetensors"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_a_frozen_alpha_stays_put_and_weights_the_view_by_it(alpha):
    """model.alpha_trainable: false (the focus-effect controls): alpha is a buffer at alpha_init, not
    a parameter, gets no gradient, survives an optimizer step, and the masked view uses it."""
    model, tok = _model("mini-focusclip", "model.alpha_trainable=false", f"model.alpha_init={alpha}")
    assert "alpha_logit" not in dict(model.named_parameters()) and model.alpha.item() == alpha
    x, ids, mask, hm = _batch(tok)
    raw = x * 0.5 + 0.5
    torch.testing.assert_close(model.mask_pixels(x, hm), (raw * (alpha + hm[:, None] * (1 - alpha)) - 0.5) / 0.5)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    out = model(x, ids, mask, hm)
    (out.image @ out.masked.T).sum().backward()
    opt.step()
    assert model.alpha.item() == alpha


def test_alpha_init_zero_needs_a_frozen_alpha(tmp_path):
    from focusclip.training.config import check_config
    from tests.training.fixtures import make_world, tiny_overrides

    sets = tiny_overrides(make_world(tmp_path / "w", n_train=4, n_val=2), tmp_path / "run")
    cfg = REPO / "configs" / "mini-focusclip.yaml"
    check_config(load_config(cfg, sets + ["model.alpha_init=0.0", "model.alpha_trainable=false"]))
    with pytest.raises(FocusError, match="strictly between 0 and 1.*alpha_trainable: false"):
        check_config(load_config(cfg, sets + ["model.alpha_init=0.0"]))
    with pytest.raises(FocusError, match="between 0 and 1"):
        check_config(load_config(cfg, sets + ["model.alpha_init=1.5", "model.alpha_trainable=false"]))


def test_a_learnt_temperature_is_floored_at_clips_cap():
    """τ = exp(log_temperature), floored at 0.01 (CLIP's logit scale ≤ 100), as the loss and the
    metrics see it; a fixed τ is used as given."""
    from focusclip.training.model import MIN_TEMPERATURE

    model, tok = _model("mini-clip")
    with torch.no_grad():
        model.log_temperature.fill_(-8.0)                 # exp(-8) = 0.00034
    assert model.temperature.item() == pytest.approx(MIN_TEMPERATURE) == 0.01
    assert model(*_batch(tok)[:3]).temperature.item() == pytest.approx(0.01)
    with torch.no_grad():
        model.log_temperature.fill_(-1.0)
    assert model.temperature.item() == pytest.approx(0.36788, rel=1e-4)


def test_the_model_is_read_through_its_config_and_built_one_way():
    """`FocusCLIPModel(config)` or `FocusCLIPModel.from_towers(…)`; its settings are `model.config`'s
    (no alias properties, no wrapper function named like a class)."""
    import focusclip.training.model as module

    model, _ = _model("tiny-clip")
    assert not hasattr(module, "FocusCLIP") and not hasattr(module.FocusCLIPModel, "from_config_dict")
    for key in ("name", "embed_dim", "triple", "shared_encoder", "image_size", "max_text_length",
                "learn_temperature", "image_mean", "image_std"):
        assert not hasattr(model, key), key
    assert (model.config.name, model.config.embed_dim, model.config.triple, model.config.image_size,
            model.config.max_text_length) == ("tiny-clip", 64, False, 64, 256)
    again = module.FocusCLIPModel(model.config)          # random towers with the same shapes
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}

"""The convolutional-stem vision tower (`model.vision.stem: conv`, training/vit.py):

- its patch embedding is what the stem says: 3×3 stride-2 convolutions, batch norm, ReLU, computed
  here with torch's functional ops from the tower's own parameters;
- `pooling: mean` reads out the mean of the patch tokens, `cls` the [CLS] token;
- a conv-stem FocusCLIP checkpoint loads through AutoModel in a fresh interpreter (also when
  transformers' ViT was imported first), with the embeddings of `load_checkpoint`; its exported
  vision tower loads through AutoModel and gives the same image embeddings from the projections;
- a conv-stem tower saved with `save_pretrained` and named as `model.vision.pretrained` trains from
  exactly the saved weights;
- after a FocusCLIP training step the stem's running statistics are the clean batch's alone, whatever
  the heatmaps (the masked pass runs with them frozen).
(A bad stem shape is one line: test_config_cli.py.)
"""
from __future__ import annotations

import copy
import json
import subprocess

import pytest
import torch
import torch.nn.functional as F

from focusclip.training.config import load_config
from focusclip.training.factory import build_model, build_tokenizer, load_pretrained
from focusclip.training.dist import Dist
from focusclip.training.loss import FocusLoss
from focusclip.training.model import FocusCLIPModel, VisionTower
from focusclip.training.steps import make_amp, train_step
from focusclip.training.vit import FocusViTConfig, FocusViTModel, batch_statistics_frozen
from tests.conftest import REPO, console_script
from tests.training.fixtures import tiny_overrides, trained_tiny
from tests.training.test_hf_model import EMBED, ENV, TEXTS, _python

CONV = {"model.vision.stem": "conv", "model.vision.pooling": "mean", "model.vision.stem_channels": "[8,16]"}


def _tower(image_size: int = 32, **kw) -> FocusViTModel:
    torch.manual_seed(0)
    cfg = FocusViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         image_size=image_size, patch_size=8, stem_channels=[8, 16], **kw)
    return FocusViTModel(cfg, add_pooling_layer=False)


def test_the_stem_is_strided_convolutions_with_batch_norm_and_relu():
    vit = _tower()
    convs = [m for m in vit.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in vit.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(8, 3, 3, 3), (16, 8, 3, 3), (32, 16, 3, 3)]
    with torch.no_grad():   # running statistics and affine terms that are not the identity
        for bn in norms:
            bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.2, 0.2)
    vit.eval()
    x = torch.randn(2, 3, 32, 32)
    want = x
    for conv, bn in zip(convs, norms):
        want = F.relu(F.batch_norm(F.conv2d(want, conv.weight, stride=2, padding=1), bn.running_mean,
                                   bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps))
    with torch.no_grad():
        got = vit.embeddings.patch_embeddings(x)
    assert got.shape == (2, 16, 32)                       # (32 / 8)² tokens of width hidden
    torch.testing.assert_close(got, want.flatten(2).transpose(1, 2))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_reads_out_the_patch_tokens_mean_or_the_cls_token(pooling):
    tower = VisionTower(_tower(pooling=pooling), embed_dim=16, image_size=32).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        h = tower.vit(pixel_values=x).last_hidden_state             # [3, 1 + 16, 32]
        readout = h[:, 1:].sum(1) / 16 if pooling == "mean" else h[:, 0]
        torch.testing.assert_close(tower(x), readout @ tower.proj.weight.T)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny conv-stem FocusCLIP trained 3 steps; its checkpoint and reference embeddings."""
    return trained_tiny(tmp_path_factory.mktemp("conv"), TEXTS, **CONV)


@pytest.mark.parametrize("imports", ["import focusclip.training.model",
                                     "from transformers import ViTModel\nimport focusclip.training.model"])
def test_automodel_loads_a_conv_stem_checkpoint(trained, imports):
    config = json.loads((trained["ckpt"] / "config.json").read_text())["vision"]
    assert (config["model_type"], config["stem"], config["stem_channels"], config["pooling"]) == (
        "focusclip_vit", "conv", [8, 16], "mean")
    out = _python(EMBED.format(imports=imports, texts=TEXTS), trained["ckpt"], trained["pixels"])
    assert out["class"] == "FocusCLIPModel" and out["features_norm_ok"]
    torch.testing.assert_close(torch.tensor(out["image"]), trained["ref"]["image"], rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.tensor(out["text"]), trained["ref"]["text"], rtol=0, atol=1e-6)
    card = (trained["ckpt"] / "README.md").read_text()
    assert "as 3×3 stride-2 convolutions (widths [8, 16], batch norm)" in card
    assert "read out as the mean of the patch tokens" in card


EXPORTED = """
import json, sys, torch
from safetensors.torch import load_file
{imports}
from transformers import AutoModel
out, pixels = sys.argv[1], torch.load(sys.argv[2])
vit = AutoModel.from_pretrained(out + "/vision").eval()
proj = load_file(out + "/projections.safetensors")
with torch.no_grad():
    h = vit(pixel_values=pixels).last_hidden_state
    img = torch.nn.functional.normalize(h[:, 1:].mean(1) @ proj["vision_projection"].T, dim=-1)
print(json.dumps({{"class": type(vit).__name__, "image": img.tolist()}}))
"""


@pytest.mark.parametrize("imports", ["import focusclip.training.vit",
                                     "from transformers import AutoModel\nimport focusclip.training.model"])
def test_the_exported_conv_stem_tower_loads_through_automodel(trained, tmp_path, imports):
    out = tmp_path / "export"
    r = subprocess.run([console_script("focus-train"), "export", str(trained["ckpt"]), "-o", str(out)],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "(FocusViTModel)" in r.stdout
    assert "`model_type: focusclip_vit`" in (out / "README.md").read_text()
    got = _python(EXPORTED.format(imports=imports), out, trained["pixels"])
    assert got["class"] == "FocusViTModel"
    torch.testing.assert_close(torch.tensor(got["image"]), trained["ref"]["image"], rtol=0, atol=1e-5)


def test_a_saved_conv_stem_tower_named_as_pretrained_is_trained_from(trained, tmp_path):
    vit = _tower(image_size=64)
    with torch.no_grad():
        for bn in (m for m in vit.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)                  # buffers travel too
    vit.save_pretrained(tmp_path / "vision")
    sets = {"model.vision.pretrained": tmp_path / "vision", "train.max_steps": 0}
    cfg = load_config(REPO / "configs/tiny-clip.yaml", tiny_overrides(trained["world"], tmp_path / "run", **sets))
    pre = load_pretrained(cfg)
    tokenizer, _ = build_tokenizer(cfg, pre, TEXTS)
    model = build_model(cfg, tokenizer, pre)
    assert type(model.vision.vit).__name__ == "FocusViTModel" and model.vision.mean_pool
    got, saved = model.vision.vit.state_dict(), vit.state_dict()
    assert set(got) == set(saved)
    for k, v in saved.items():
        assert torch.equal(got[k], v), k


def _focusclip(stem_tower: FocusViTModel) -> FocusCLIPModel:
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    text = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32), add_pooling_layer=False)
    return FocusCLIPModel.from_towers(stem_tower, text, embed_dim=8, triple=True, image_size=32)


def _stem_state(model: FocusCLIPModel | VisionTower) -> dict[str, torch.Tensor]:
    stem = (model.vision if isinstance(model, FocusCLIPModel) else model).vit.embeddings.patch_embeddings.projection
    return {k: v.clone() for k, v in stem.state_dict().items() if "running" in k or "num_batches" in k}


def _one_step(heatmaps: torch.Tensor, pixels: torch.Tensor) -> tuple[FocusCLIPModel, dict, dict]:
    """One FocusCLIP optimizer step (the trainer's train_step) from the same start; the stem's
    buffers after it, and those a clean-only pass of a copy of the start gives (CLIP's step)."""
    model = _focusclip(_tower())
    clean_only = copy.deepcopy(model.vision).train()
    with torch.no_grad():
        clean_only(pixels)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    batch = {"pixels": pixels, "input_ids": torch.randint(5, 50, (4, 6)),
             "attention_mask": torch.ones(4, 6, dtype=torch.long), "heatmaps": heatmaps}
    amp = make_amp(torch.device("cpu"), "fp32")
    train_step(model, model, FocusLoss("ntxent"), opt, sched, [batch], Dist(), amp, 1.0)
    return model, _stem_state(model), _stem_state(clean_only)


def test_after_a_training_step_the_stems_batch_statistics_come_from_the_clean_view_only():
    """The masked view runs through the same stem after the clean one; with batch norm's running
    statistics updated by both, evaluation would normalise clean images with statistics that are
    half masked images (and depend on the heatmaps). Two steps from the same start with different
    heatmaps leave the same statistics: those of the clean batch alone, counted once."""
    torch.manual_seed(3)
    pixels = torch.randn(4, 3, 32, 32)
    person = torch.zeros(4, 32, 32)
    person[:, 8:24, 10:20] = 1.0
    model_a, state_a, clean = _one_step(person, pixels)
    model_b, state_b, _ = _one_step(torch.rand(4, 32, 32), pixels)
    assert set(state_a) == set(clean) and state_a
    for k in clean:
        torch.testing.assert_close(state_a[k], clean[k], rtol=0, atol=0, msg=k)
        torch.testing.assert_close(state_b[k], clean[k], rtol=0, atol=0, msg=k)
    # the first batch norm by hand: momentum 0.1 from mean 0, var 1, over the clean batch's first convolution
    conv = _tower().embeddings.patch_embeddings.projection.layers[0]          # the start's weights
    with torch.no_grad():
        y = F.conv2d(pixels, conv.weight, stride=2, padding=1)
    torch.testing.assert_close(state_a["layers.1.running_mean"], 0.1 * y.mean((0, 2, 3)))
    torch.testing.assert_close(state_a["layers.1.running_var"], 0.9 + 0.1 * y.var((0, 2, 3), unbiased=True))
    assert int(state_a["layers.1.num_batches_tracked"]) == 1
    # the heatmaps did reach the weights: the masked view trained, only its statistics were left out
    assert not torch.equal(model_a.vision.proj.weight, model_b.vision.proj.weight)


def test_the_masked_view_is_normalised_with_its_own_batch_in_training_and_running_statistics_in_eval():
    torch.manual_seed(4)
    stem = _tower().embeddings.patch_embeddings.projection
    x = torch.randn(4, 3, 32, 32) * 3 + 1
    stem.train()
    with batch_statistics_frozen(stem):
        frozen = stem(x)
    assert all(torch.equal(m.running_mean, torch.zeros_like(m.running_mean)) for m in stem.modules()
               if isinstance(m, torch.nn.BatchNorm2d))
    torch.testing.assert_close(frozen, stem(x))          # the same batch statistics as a normal training pass
    assert all(m.track_running_stats for m in stem.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stem.eval()
    with batch_statistics_frozen(stem):
        in_eval = stem(x)
    torch.testing.assert_close(in_eval, stem(x))

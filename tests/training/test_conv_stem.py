"""The convolutional-stem vision tower (`model.vision.stem: conv`, training/vit.py):

- its patch embedding is what the stem says: 3×3 stride-2 convolutions, batch norm, ReLU, computed
  here with torch's functional ops from the tower's own parameters;
- `pooling: mean` reads out the mean of the patch tokens, `cls` the [CLS] token;
- a conv-stem FocusCLIP checkpoint loads through AutoModel in a fresh interpreter (also when
  transformers' ViT was imported first), with the embeddings of `load_checkpoint`; its exported
  vision tower loads through AutoModel and gives the same image embeddings from the projections;
- a conv-stem tower saved with `save_pretrained` and named as `model.vision.pretrained` trains from
  exactly the saved weights.
(A bad stem shape is one line: test_config_cli.py.)
"""
from __future__ import annotations

import json
import subprocess

import pytest
import torch
import torch.nn.functional as F

from focusclip.training.config import load_config
from focusclip.training.factory import build_model, build_tokenizer, load_pretrained
from focusclip.training.model import VisionTower
from focusclip.training.vit import FocusViTConfig, FocusViTModel
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

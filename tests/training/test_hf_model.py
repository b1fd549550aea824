"""A trained checkpoint is a Hugging Face model folder: AutoConfig/AutoModel/AutoTokenizer load it once
focusclip.training.model is imported (before or after transformers' Auto classes), with the embeddings of
`load_checkpoint`; its card parses; the exported towers are plain ViTModel/BertModel folders; the old layout
still loads and resumes; `import focusclip` and `focus-data --help` stay free of torch and transformers."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

from focusclip.core.errors import FocusError
from focusclip.training import load_checkpoint
from focusclip.training.config import load_config
from focusclip.training.publish import export_towers
from focusclip.training.trainer import run_train
from tests.conftest import REPO, VENV_BIN, console_script
from tests.training.fixtures import trained_tiny

TEXTS = ["A red figure stands upright at the left of the picture.", "one person on the right", "blue"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny FocusCLIP trained 3 steps; its checkpoint, world and reference embeddings."""
    return trained_tiny(tmp_path_factory.mktemp("hf"), TEXTS)


def _python(code: str, *args, env=ENV) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object last."""
    r = subprocess.run([PYTHON, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, timeout=300,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


EMBED = """
import json, sys, torch
{imports}
from transformers import AutoConfig, AutoModel, AutoTokenizer
folder, pixels = sys.argv[1], torch.load(sys.argv[2])
model = AutoModel.from_pretrained(folder).eval()
tok = AutoTokenizer.from_pretrained(folder)
t = tok({texts!r}, padding="longest", return_tensors="pt")
with torch.no_grad():
    img, txt = model.encode_image(pixels), model.encode_text(t["input_ids"], t["attention_mask"])
    feats = model.get_image_features(pixel_values=pixels)
print(json.dumps({{"class": type(model).__name__, "config": type(AutoConfig.from_pretrained(folder)).__name__,
                  "model_type": model.config.model_type, "image": img.tolist(), "text": txt.tolist(),
                  "features_norm_ok": bool(torch.allclose(torch.nn.functional.normalize(feats, dim=-1), img))}}))
"""


def test_automodel_loads_the_checkpoint_with_equal_embeddings(trained):
    """A fresh interpreter: `import focusclip.training.model` before transformers' Auto classes registers
    model_type focusclip (the other order: test_exported_towers_…); the embeddings equal load_checkpoint's."""
    out = _python(EMBED.format(imports="import focusclip.training.model", texts=TEXTS), trained["ckpt"], trained["pixels"])
    assert (out["class"], out["config"], out["model_type"]) == ("FocusCLIPModel", "FocusCLIPConfig", "focusclip")
    torch.testing.assert_close(torch.tensor(out["image"]), trained["ref"]["image"], rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.tensor(out["text"]), trained["ref"]["text"], rtol=0, atol=1e-6)
    assert out["features_norm_ok"]


def test_checkpoint_folder_layout_and_config(trained):
    ckpt = trained["ckpt"]
    names = sorted(p.relative_to(ckpt).as_posix() for p in ckpt.rglob("*") if p.is_file())
    assert names == ["README.md", "config.json", "model.safetensors", "preprocessor_config.json",
                     "processor_config.json", "tokenizer.json", "tokenizer_config.json", "train_config.yaml", "training_state/progress.json", "training_state/state.pt"]
    config = json.loads((ckpt / "config.json").read_text())
    assert config["model_type"] == "focusclip" and config["architectures"] == ["FocusCLIPModel"]
    assert config["training_step"] == 3 and config["name"] == "tiny-focusclip"
    prov = config["provenance"]
    assert prov["describers"] == {"second": 16, "template": 16} and prov["train_images"] == 16
    assert prov["vision"] == {"kind": "random"} and prov["tokenizer"]["kind"] == "trained"
    assert prov["tokenizer"]["note"].startswith("WordPiece")
    assert json.loads((ckpt / "training_state/progress.json").read_text())["step"] == 3


def test_model_card_parses_and_says_what_the_model_is(trained):
    ckpt = trained["ckpt"]
    card = ModelCard.load(ckpt / "README.md")
    assert card.data.license == "other" and "focusclip" in card.data.tags
    assert card.data.eval_results is None                        # not evaluated yet
    text = card.text
    for heading in ("## Model", "## Training data", "## Training config", "## Zero-shot results",
                    "## How to use", "## Intended use", "## Limitations", "## License"):
        assert heading in text, heading
    assert "| template | 16 |" in text and "| second | 16 |" in text
    block = text.split("```yaml\n")[1].split("```")[0]
    train_yaml = yaml.safe_load((ckpt / "train_config.yaml").read_text())   # local paths shown as <local>/NAME
    train_yaml["data"].update({k: f"<local>/{Path(train_yaml['data'][k]).name}" for k in ("dataset", "annotations", "images")})
    assert yaml.safe_load(block) == {**train_yaml, "output_dir": f"<local>/{Path(train_yaml['output_dir']).name}"}
    assert "random init" in text and "3 optimizer steps" in text


PLAIN = """
import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, BertModel, ViTModel
out, pixels = sys.argv[1], torch.load(sys.argv[2])
vit, bert = ViTModel.from_pretrained(out + "/vision").eval(), BertModel.from_pretrained(out + "/text").eval()
tok = AutoTokenizer.from_pretrained(out + "/text")
proj = load_file(out + "/projections.safetensors")
t = tok({texts!r}, padding="longest", return_tensors="pt")
with torch.no_grad():
    cls = vit(pixel_values=pixels, interpolate_pos_encoding=True).last_hidden_state[:, 0]
    h = bert(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).last_hidden_state
    m = t["attention_mask"].unsqueeze(-1).float()
    pooled = (h * m).sum(1) / m.sum(1)
    img = torch.nn.functional.normalize(cls @ proj["vision_projection"].T, dim=-1)
    txt = torch.nn.functional.normalize(pooled @ proj["text_projection"].T, dim=-1)
plain = "focusclip" in sys.modules
import focusclip.training.model   # after transformers' Auto classes: registers at once
model = AutoModel.from_pretrained(sys.argv[3])
print(json.dumps({{"focusclip_imported": plain, "auto_text": type(AutoModel.from_pretrained(out + "/text")).__name__,
                  "image": img.tolist(), "text": txt.tolist(), "late_auto": type(model).__name__}}))
"""


def test_exported_towers_are_plain_vit_and_bert(trained, tmp_path):
    out = tmp_path / "export"
    old = os.umask(0o002)
    try:
        r = subprocess.run([console_script("focus-train"), "export", str(trained["ckpt"]), "-o", str(out)],
                           capture_output=True, text=True, env=ENV, timeout=300)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert "ViTModel" in r.stdout
    assert {p.name for p in out.iterdir()} == {"vision", "text", "projections.safetensors", "README.md"}
    modes = {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
    assert modes == {0o664}, modes
    assert "## Exported towers" in (out / "README.md").read_text()
    got = _python(PLAIN.format(texts=TEXTS), out, trained["pixels"], trained["ckpt"])
    assert not got["focusclip_imported"] and got["auto_text"] == "BertModel"
    assert got["late_auto"] == "FocusCLIPModel"
    torch.testing.assert_close(torch.tensor(got["image"]), trained["ref"]["image"], rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.tensor(got["text"]), trained["ref"]["text"], rtol=0, atol=1e-5)
    with pytest.raises(FocusError, match="output folder is not empty"):
        export_towers(trained["ckpt"], out)


def to_old_layout(ckpt, dest):
    """The checkpoint as the code before FocusCLIPModel wrote it: state_dict() keys through
    safetensors.save_file, a hand-written config.json (no model_type), tokenizer/, state.pt, meta.json."""
    from safetensors.torch import save_file

    from focusclip.training.checkpoint import load_model
    from focusclip.training.text import load_tokenizer

    model = load_model(ckpt)
    dest.mkdir(parents=True)
    save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()},
              str(dest / "model.safetensors"))
    (dest / "config.json").write_text(json.dumps(model.config_dict()))
    load_tokenizer(ckpt).save_pretrained(str(dest / "tokenizer"))
    shutil.copy(ckpt / "train_config.yaml", dest / "train_config.yaml")
    shutil.copy(ckpt / "training_state/state.pt", dest / "state.pt")
    (dest / "meta.json").write_text(json.dumps({"step": 3, "epoch": 0}))
    return dest


def test_old_layout_checkpoints_load_and_resume(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run, ignore=shutil.ignore_patterns("checkpoints"))
    old = to_old_layout(trained["ckpt"], run / "checkpoints" / "last")
    assert "model_type" not in json.loads((old / "config.json").read_text())
    m = load_checkpoint(old)
    assert m.name == "tiny-focusclip@3"
    pixels = torch.load(trained["pixels"])
    torch.testing.assert_close(m.encode_images(pixels), trained["ref"]["image"], rtol=0, atol=1e-6)
    torch.testing.assert_close(m.encode_texts(TEXTS), trained["ref"]["text"], rtol=0, atol=1e-6)
    cfg = load_config(run / "config.yaml", [f"output_dir={run}", "train.max_steps=4"])
    report = run_train(cfg, resume="latest")
    assert report.counts["steps"] == 4
    new = run / "checkpoints" / "last"
    assert (new / "training_state/state.pt").is_file() and not (new / "state.pt").exists()
    assert json.loads((new / "config.json").read_text())["training_step"] == 4


def test_importing_focusclip_and_focus_data_help_load_neither_torch_nor_transformers():
    out = _python("import json, sys, focusclip, focusclip.pipeline.cli\n"
                  "print(json.dumps({'loaded': sorted(m for m in ('torch', 'transformers') if m in sys.modules)}))")
    assert out == {"loaded": []}
    r = subprocess.run([PYTHON, "-X", "importtime", console_script("focus-data"), "--help"], capture_output=True,
                       text=True, env=ENV, timeout=120)
    assert r.returncode == 0 and "convert" in r.stdout
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "focusclip.pipeline.cli" in imported
    assert not {m for m in imported if m.split(".")[0] in ("torch", "transformers")}

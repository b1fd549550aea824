"""What a checkpoint fine-tuned from a pretrained dual encoder (`model.init`) gives back as that model:
`export_as_base` writes it as the base model's own class (a plain `CLIPModel` / `SiglipModel` folder
with its tokenizer and image processor, which `transformers.pipeline("zero-shot-image-classification")`
and `focus-eval MODEL` load unchanged), and `wise_ft` blends it with the base weights (WiSE-FT,
Wortsman et al. 2022) into a new checkpoint.

The export drops only what FocusCLIP adds for training (alpha, the masked view's weight); the base
model's weights, logit scale and bias are the fine-tuned ones. The image processor is the base's own,
saved in the checkpoint's config (`base_processor`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import torch

from focusclip.core.errors import fail, reading
from focusclip.core.hub import Source, load, quiet_transformers, resolve
from focusclip.core.io import atomic_write_text, give_umask_mode
from focusclip.core.report import Report
from focusclip.training import checkpoint as ck
from focusclip.training.finetune import interpolate


def _fine_tuned(checkpoint: str | Path, towers: bool = False):
    """(checkpoint dir, FocusCLIPModel, tokenizer) of a checkpoint fine-tuned from a dual encoder (or,
    with `towers`, from any model.init)."""
    from focusclip.training.text import load_tokenizer

    ckpt = ck.locate_checkpoint(checkpoint)
    model = ck.load_model(ckpt)
    if not model.config.base and not towers:
        raise fail("this checkpoint was built from two towers, not fine-tuned from a dual encoder", str(ckpt),
                   "pass a checkpoint of a run with model.init (export its towers with `focus-train export`)")
    with reading(ck.tokenizer_dir(ckpt), "the checkpoint's tokenizer", ck.DAMAGED):
        tokenizer = load_tokenizer(ck.tokenizer_dir(ckpt))
    return ckpt, model, tokenizer


def _fresh_dir(out_dir: Path, force: bool) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise fail("output folder is not empty", str(out_dir), "choose another -o or pass --force")
    tmp = out_dir.with_name(out_dir.name + ".incomplete")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _finish_dir(tmp: Path, out_dir: Path) -> None:
    give_umask_mode(p for p in tmp.rglob("*") if p.is_file())   # safetensors writes 0600
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def export_as_base(checkpoint: str | Path, out_dir: Path, force: bool = False) -> Report:
    """`out_dir`: the checkpoint's dual encoder as its own class (config.json, model.safetensors), its
    tokenizer, its image processor (preprocessor_config.json) and a model card."""
    ckpt, model, tokenizer = _fine_tuned(checkpoint)
    train_yaml, _ = ck.read_train_config(ckpt)
    if not model.config.base_text_mask:   # its own tokenizer's inputs again (training added the mask)
        tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n != "attention_mask"]
    tmp = _fresh_dir(out_dir, force)
    with quiet_transformers():
        model.dual.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    atomic_write_text(tmp / "preprocessor_config.json", json.dumps(model.config.base_processor, indent=2) + "\n")
    atomic_write_text(tmp / ck.CARD, base_card(model, ckpt, train_yaml))
    _finish_dir(tmp, Path(out_dir))
    report = Report("export", {"checkpoint": str(ckpt), "output": str(out_dir), "as_base": True})
    report.extra["class"] = type(model.dual).__name__
    return report


def base_card(model, ckpt: Path, train_yaml: Optional[str]) -> str:
    """A model card naming the base, the data, the recipe and the results the checkpoint's card holds."""
    prov = model.config.provenance or {}
    base = prov.get("vision", {})
    name = base.get("name", "?") + (f"@{base['commit'][:12]}" if base.get("commit") else "")
    cls = type(model.dual).__name__
    lines = ["---", "library_name: transformers", "pipeline_tag: zero-shot-image-classification", "tags: [focusclip]",
             "---", f"# {model.config.name}", "",
             f"`{cls}` fine-tuned from **{name}** with focus-train (FocusCLIP's three views: image–text, "
             f"heatmap-weighted image–image and –text), step {model.config.training_step}.",
             f"Data: {prov.get('dataset', '?')} ({prov.get('train_images', '?')} training images; describers "
             f"{', '.join(prov.get('describers', {})) or '?'}).",
             f"Load it as the base: `{cls}.from_pretrained(folder)` or "
             "`pipeline(\"zero-shot-image-classification\", model=folder)`.", ""]
    if train_yaml:
        lines += ["## Recipe (focus-train's resolved config)", "", "```yaml", train_yaml.rstrip(), "```", ""]
    old = ckpt / ck.CARD
    if old.is_file() and "## Results" in (text := old.read_text(encoding="utf-8")):
        lines += [text[text.index("## Results"):].rstrip(), ""]
    return "\n".join(lines)


def load_base(model) -> torch.nn.Module:
    """The dual encoder a fine-tuned checkpoint started from (its provenance: hub id at the commit it
    resolved to, or folder), loaded as every pretrained part is (cached, HF_HUB_OFFLINE, one line)."""
    from transformers import AutoModel

    import focusclip.training.model  # noqa: F401  (model_type focusclip: a checkpoint as the base)

    prov = (model.config.provenance or {}).get("vision") or {}
    if prov.get("kind") not in ("hub", "folder"):
        raise fail("the checkpoint does not say which model it was fine-tuned from", "CHECKPOINT",
                   "pass a checkpoint of a run with model.init")
    kw = dict(what="base model", key="provenance.vision")
    src: Source = resolve(prov["name"], prov.get("commit") or prov.get("revision"), **kw)
    base = load(src, AutoModel.from_pretrained, **kw)
    focus = getattr(base.config, "model_type", "") == "focusclip"
    return base.dual if focus and base.config.base else base


def wise_ft(checkpoint: str | Path, alpha: float, out_dir: Path, force: bool = False) -> Report:
    """A checkpoint whose dual encoder is (1 − alpha)·base + alpha·fine-tuned (alpha 0: the base, 1:
    the fine-tuned one); everything else (alpha of the masked view, tokenizer, config) from the checkpoint.
    Continued from a focus-train checkpoint of two towers: its towers, projections and τ so blended."""
    if not 0.0 <= alpha <= 1.0:
        raise fail(f"--alpha is {alpha}, not between 0 and 1", "--alpha", "0 = the base model, 1 = the fine-tuned one")
    ckpt, model, tokenizer = _fine_tuned(checkpoint, towers=True)
    train_yaml, _ = ck.read_train_config(ckpt)
    base = load_base(model)
    if model.config.base:
        model.dual.load_state_dict(interpolate(base.state_dict(), model.dual.state_dict(), alpha))
    else:   # continued from a focus-train checkpoint of two towers: what both hold, alike in shape
        tuned, old = model.state_dict(), base.state_dict()
        both = [k for k in tuned if k in old and old[k].shape == tuned[k].shape]
        mixed = interpolate({k: old[k] for k in both}, {k: tuned[k] for k in both}, alpha)
        model.load_state_dict({**tuned, **mixed})
    model.config.name = f"{model.config.name}-wise{alpha:g}"
    model.config.provenance = {**(model.config.provenance or {}), "wise_ft": {"alpha": alpha, "fine_tuned": str(ckpt)}}
    tmp = _fresh_dir(out_dir, force)
    ck.write_model_folder(tmp, model, tokenizer, train_yaml)
    _finish_dir(tmp, Path(out_dir))
    report = Report("wise", {"checkpoint": str(ckpt), "alpha": alpha, "output": str(out_dir)})
    return report

"""A checkpoint leaves the run directory: `focus-train push` (the model folder to a hub model repo, one
commit) and `focus-train export` (the towers as plain `ViTModel` / `BertModel` folders).

Both write a model card (training/card.py), with the zero-shot table when a focus-eval results.json
is given. Neither ever sends `training_state/` (optimizer and RNG states): that stays with the run.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

from focusclip.core.errors import fail, reading
from focusclip.core.hub import quiet_transformers
from focusclip.core.hub_repo import check_repo_id, commit_files, write_token
from focusclip.core.io import atomic_write_text, give_umask_mode, read_json
from focusclip.core.report import Report
from focusclip.training import checkpoint as ck
from focusclip.training.card import public_train_config, render_card

# Files of a model folder that are pushed; everything else in a checkpoint stays local.
NOT_PUSHED = {ck.OLD_META, ck.OLD_STATE}


def read_results(path: Optional[Path]) -> Optional[dict]:
    """A focus-eval results.json (its `tasks` are put in the card), or None."""
    if path is None:
        return None
    results = read_json(path)
    if not isinstance(results, dict) or not isinstance(results.get("tasks"), dict):
        raise fail("not a focus-eval results file (no 'tasks')", str(path), "pass the -o file of focus-eval")
    return results


def _train_yaml(ckpt: Path) -> Optional[str]:
    """The checkpoint's train_config.yaml, checked to parse (the card quotes and reads it)."""
    return ck.read_train_config(ckpt)[0]


def model_files(ckpt: Path, staging: Path) -> Path:
    """The folder whose files are the model: the checkpoint itself, or, for the layout before the
    Hugging Face folder, a copy converted into `staging` (weights and tokenizer re-saved)."""
    if not ck.is_old_layout(ckpt):
        return ckpt
    model = ck.load_model(ckpt)
    from focusclip.training.text import load_tokenizer

    model.config.training_step = model.config.training_step or _int(ck.checkpoint_step(ckpt, model.config))
    with reading(ck.tokenizer_dir(ckpt), "the checkpoint's tokenizer", ck.DAMAGED):
        tokenizer = load_tokenizer(ck.tokenizer_dir(ckpt))
    ck.write_model_folder(staging, model, tokenizer, _train_yaml(ckpt))
    return staging


def _int(step) -> Optional[int]:
    return int(step) if str(step).isdigit() else None


def push_checkpoint(checkpoint: Path, repo_id: str, private: bool = False, results: Optional[Path] = None,
                    license_id: str = "other") -> Report:
    """Commit the checkpoint's model folder (config, weights, tokenizer, image processor, train_config.yaml
    with local paths made `<local>/NAME`, and a card for `repo_id`, with `results` in it) to the hub model
    repo `repo_id` in one commit."""
    check_repo_id(repo_id)
    token = write_token("focus-train push")
    ckpt = ck.resolve_checkpoint_dir(checkpoint)
    evals = read_results(results)
    report = Report("push", {"checkpoint": str(ckpt), "repo_id": repo_id, "private": private,
                             "results": str(results) if results else None, "license": license_id})
    with tempfile.TemporaryDirectory(prefix="focus-train-push-") as tmp:
        folder = model_files(ckpt, Path(tmp))
        from focusclip.training.hf_config import FocusCLIPConfig

        with reading(folder / ck.MODEL_CONFIG, "the checkpoint's config", ck.DAMAGED, (TypeError,)):
            config = FocusCLIPConfig.from_pretrained(str(folder), local_files_only=True)
        card = render_card(config, _train_yaml(folder), evals, repo_id, license_id).content.encode()
        files: dict = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
                       if p.is_file() and ck.STATE_DIR not in p.relative_to(folder).parts
                       and p.name not in NOT_PUSHED}
        files[ck.CARD] = card
        train_yaml = _train_yaml(folder)
        public_yaml, hidden = public_train_config(train_yaml) if train_yaml else (None, [])
        if hidden:   # the training machine's paths stay local: the card's dump and this file agree
            files[ck.TRAIN_CONFIG] = public_yaml.encode()
        step = config.training_step
        message = f"Upload {config.name} (FocusCLIP) at step {step}" if step is not None else f"Upload {config.name}"
        description = "\n".join([f"- {len(files)} files: " + ", ".join(sorted(files)),
                                 "- zero-shot results in the card" if evals else "- no evaluation results yet",
                                 "Pushed with focusclip `focus-train push`."])
        report.extra["push"] = commit_files(repo_id, "model", files, token=token, private=private,
                                            message=message, description=description)
    report.count("files", len(files))
    return report


def export_towers(checkpoint: Path, out_dir: Path, results: Optional[Path] = None, force: bool = False) -> Report:
    """`out_dir/vision/` (ViTModel, or FocusViTModel for a convolutional stem), `out_dir/text/` (BertModel-family encoder + tokenizer), their
    projections to the joint space in `out_dir/projections.safetensors`, and the model card."""
    from safetensors.torch import save_file

    from focusclip.training.text import load_tokenizer

    ckpt = ck.locate_checkpoint(checkpoint)
    evals = read_results(results)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise fail("output folder is not empty", str(out_dir), "choose another -o or pass --force")
    model = ck.load_model(ckpt)
    with reading(ck.tokenizer_dir(ckpt), "the checkpoint's tokenizer", ck.DAMAGED):
        tokenizer = load_tokenizer(ck.tokenizer_dir(ckpt))
    train_yaml = _train_yaml(ckpt)   # every file read before anything is written
    tmp = out_dir.with_name(out_dir.name + ".incomplete")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with quiet_transformers():
        model.vision.vit.save_pretrained(str(tmp / "vision"))
        model.text.encoder.save_pretrained(str(tmp / "text"))
        tokenizer.save_pretrained(str(tmp / "text"))
    # [D, H] each: embedding = proj @ tower output ([CLS] for the image, masked mean for the text)
    save_file({"vision_projection": model.vision.proj.weight.detach().contiguous().cpu(),
               "text_projection": model.text.proj.weight.detach().contiguous().cpu()},
              str(tmp / "projections.safetensors"))
    card = render_card(model.config, train_yaml, evals).content
    atomic_write_text(tmp / ck.CARD, card + export_note(model.vision.vit.config))
    give_umask_mode(p for p in tmp.rglob("*") if p.is_file())   # safetensors writes 0600
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    report = Report("export", {"checkpoint": str(ckpt), "output": str(out_dir)})
    report.extra.update(vision=str(out_dir / "vision"), text=str(out_dir / "text"),
                        vision_class=type(model.vision.vit).__name__)
    return report


EXPORT_NOTE = """
## Exported towers

This folder holds the two encoders as plain transformers models, for reuse without focusclip:
`vision/` loads with `ViTModel.from_pretrained`, `text/` with `AutoModel.from_pretrained` (a BERT-family
encoder) and `AutoTokenizer.from_pretrained`. `projections.safetensors` holds the linear maps into the
joint embedding space (`vision_projection`, `text_projection`, [D, H], no bias): the image embedding is
`vision_projection @ last_hidden_state[:, 0]`, the text embedding `text_projection @` the mean of
`last_hidden_state` over the attention mask, each then L2-normalised.
"""

EXPORT_NOTE_FOCUS_VIT = """
## Exported towers

This folder holds the two encoders as transformers models. `vision/` is a ViT with a convolutional
stem or mean-pooled readout (`model_type: focusclip_vit`): it loads with `AutoModel.from_pretrained`
once `import focusclip.training.vit` has registered the type (focusclip installed from its repository:
`pip install -e .` in a clone; it is not on PyPI). `text/` loads with
`AutoModel.from_pretrained` (a BERT-family encoder) and `AutoTokenizer.from_pretrained`.
`projections.safetensors` holds the linear maps into the joint embedding space (`vision_projection`,
`text_projection`, [D, H], no bias): the image embedding is `vision_projection @` {readout}, the text
embedding `text_projection @` the mean of `last_hidden_state` over the attention mask, each then
L2-normalised.
"""


def export_note(vision_config) -> str:
    """The card's "Exported towers" section for this vision tower (plain ViT or focusclip_vit)."""
    if getattr(vision_config, "model_type", "vit") != "focusclip_vit":
        return EXPORT_NOTE
    readout = ("the mean of `last_hidden_state[:, 1:]` (the patch tokens)" if vision_config.pooling == "mean"
               else "`last_hidden_state[:, 0]`")
    return EXPORT_NOTE_FOCUS_VIT.format(readout=readout)

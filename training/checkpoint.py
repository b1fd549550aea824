"""Checkpoints (docs/design.md §3.5): save for `--resume`, load with one call for evaluation.

Layout of `RUN/checkpoints/<step or "last">/`:
    model.safetensors   the FocusCLIP/CLIP weights (the model's `state_dict`)
    config.json         the model config: encoder shapes (ViT + BERT configs), embed_dim, triple,
                        image_size and the pixel normalisation, so the model rebuilds without the YAML
    tokenizer/          a Hugging Face tokenizer folder (`AutoTokenizer.from_pretrained` loads it)
    train_config.yaml   the resolved training config (its data.resize is the geometry eval uses)
    state.pt            optimizer, scheduler, grad scaler, step, epoch, data position, RNG states (resume only)
    meta.json           step, epoch, and `init`: where each tower's initial weights came from

Eval code uses only `load_checkpoint` and `LoadedModel`:

    from focusclip.training import load_checkpoint
    m = load_checkpoint("runs/focusclip", device="cuda")     # or .../checkpoints/1200
    x = torch.stack([m.preprocess(img) for img in pil_images])   # [B, 3, S, S]
    img = m.encode_images(x)                                   # [B, D], unit norm
    txt = m.encode_texts(["a photo of a person running"])     # [N, D], unit norm
    logits = img @ txt.T
"""
from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from focusclip.data.errors import fail
from focusclip.data.hub import file_sha256
from focusclip.data.io import atomic_write_text, write_json

WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
TOKENIZER_DIR = "tokenizer"
TRAIN_CONFIG = "train_config.yaml"
STATE = "state.pt"
LAST = "last"


@dataclass
class LoadedModel:
    """A trained FocusCLIP/CLIP model ready for zero-shot evaluation (plain CLIP at inference).

    `model` is in eval mode on `device`; `tokenizer` is a Hugging Face fast tokenizer;
    `image_size` the square side S the model was trained at; `name` the model name of its config
    (e.g. "focusclip", "clip") followed by the checkpoint step, e.g. "focusclip@1200".
    """
    model: torch.nn.Module
    tokenizer: Any
    image_size: int
    name: str
    device: torch.device
    max_text_length: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    path: Path
    resize: str = "crop"            # the training geometry (data.resize); checkpoints before it: crop

    def preprocess(self, image) -> torch.Tensor:
        """PIL image (any mode) → FloatTensor[3, S, S]: RGB, made S×S the way the model was trained
        (`resize`: squash, letterbox or crop; bicubic), scaled to [0, 1] and normalised with the model's
        mean/std — exactly the validation transform of training. Runs on the CPU; move the batch with
        `encode_images`."""
        from focusclip.training.transforms import pil_to_pixels

        return pil_to_pixels(image, self.image_size, self.image_mean, self.image_std, self.resize)

    @functools.cached_property
    def sha256(self) -> str:
        """SHA-256 of `model.safetensors`: which weights these are (a retrained run has another)."""
        return file_sha256(self.path / WEIGHTS)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """pixels [B, 3, S, S] (from `preprocess`) → L2-normalised embeddings [B, D] (float32, on
        `device`). Large B is split into chunks of `batch_size`."""
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise fail(f"expected pixels [B, 3, {self.image_size}, {self.image_size}], got "
                       f"{tuple(pixels.shape)}", "encode_images", "stack LoadedModel.preprocess outputs")
        outs = [self.model.encode_image(chunk.to(self.device, torch.float32)).float()
                for chunk in pixels.split(batch_size)]
        return torch.cat(outs) if outs else pixels.new_zeros(0, self.model.embed_dim)

    @torch.no_grad()
    def encode_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """texts → L2-normalised embeddings [N, D] (float32, on `device`). Tokenised in chunks of
        `batch_size`, each padded to its longest text (truncated at the training max length)."""
        if isinstance(texts, str):
            texts = [texts]
        outs = []
        for i in range(0, len(texts), batch_size):
            tok = self.tokenizer(list(texts[i:i + batch_size]), padding="longest", truncation=True,
                                 max_length=self.max_text_length, return_tensors="pt")
            outs.append(self.model.encode_text(tok["input_ids"].to(self.device),
                                               tok["attention_mask"].to(self.device)).float())
        return torch.cat(outs) if outs else torch.zeros(0, self.model.embed_dim, device=self.device)


def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """A run dir (→ its `checkpoints/last`), a `checkpoints/` folder (→ `last`) or a checkpoint
    dir itself. A user error when none of these holds a `model.safetensors`."""
    p = Path(path)
    for cand in (p, p / "checkpoints" / LAST, p / LAST):
        if (cand / WEIGHTS).is_file() and (cand / MODEL_CONFIG).is_file():
            return cand
    if not p.exists():
        raise fail("checkpoint not found", str(p), "pass a focus-train run dir or a checkpoints/<step> dir")
    raise fail(f"no {WEIGHTS} + {MODEL_CONFIG} here, nor in checkpoints/{LAST}", str(p),
               "pass a focus-train run dir or a checkpoints/<step> dir")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint for inference. `path`: a run dir (uses `checkpoints/last`) or a checkpoint
    dir. Needs no network and no YAML: the model is rebuilt from `config.json`."""
    from safetensors.torch import load_file

    from focusclip.training.model import FocusCLIP
    from focusclip.training.text import load_tokenizer

    ckpt = resolve_checkpoint_dir(path)
    device = torch.device(device)
    cfg = json.loads((ckpt / MODEL_CONFIG).read_text(encoding="utf-8"))
    model = FocusCLIP.from_config_dict(cfg)
    state = load_file(str(ckpt / WEIGHTS))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise fail(f"weights do not match config.json (missing {list(missing)[:3]}, unexpected "
                   f"{list(unexpected)[:3]})", str(ckpt), "re-save the checkpoint with focus-train")
    model.to(device).eval()
    step = ckpt.name if ckpt.name != LAST else str(read_meta(ckpt).get("step", "last"))
    return LoadedModel(model=model, tokenizer=load_tokenizer(ckpt / TOKENIZER_DIR),
                       image_size=int(cfg["image_size"]), name=f"{cfg.get('name', 'focusclip')}@{step}",
                       device=device, max_text_length=int(cfg["max_text_length"]),
                       image_mean=tuple(cfg["image_mean"]), image_std=tuple(cfg["image_std"]), path=ckpt,
                       resize=trained_resize(ckpt))


def read_meta(ckpt: Path) -> dict:
    """meta.json: step, epoch and `init` (where each tower's initial weights came from)."""
    meta = ckpt / "meta.json"
    return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}


def trained_resize(ckpt: Path) -> str:
    """The geometry the checkpoint was trained with: `data.resize` of its train_config.yaml, or
    "crop" for checkpoints written before the key existed (they were all centre-cropped)."""
    import yaml

    path = ckpt / TRAIN_CONFIG
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    data = raw.get("data") if isinstance(raw, dict) else None
    resize = data.get("resize", "crop") if isinstance(data, dict) else "crop"
    return resize if resize in ("squash", "letterbox", "crop") else "crop"


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, tokenizer, train_config_yaml: str,
                    state: dict, keep: int = 0, init: dict | None = None) -> Path:
    """Write `checkpoints/<step>/` (built in `<step>.incomplete`, renamed when complete) and copy it
    to `checkpoints/last/`. `model` is the unwrapped FocusCLIP; `state` the resume dict for
    `state.pt`; `init` where each tower's initial weights came from (meta.json). `keep > 0` keeps
    only that many numbered checkpoints (oldest deleted)."""
    from safetensors.torch import save_file

    root = Path(run_dir) / "checkpoints"
    final = root / str(step)
    tmp = root / f"{step}.incomplete"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # contiguous clones: safetensors refuses shared storage (tied or shared-encoder weights)
    tensors = {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(tmp / WEIGHTS))
    write_json(tmp / MODEL_CONFIG, model.config_dict())
    tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
    atomic_write_text(tmp / TRAIN_CONFIG, train_config_yaml)
    torch.save(state, tmp / STATE)
    write_json(tmp / "meta.json", {"step": step, "epoch": state.get("epoch"), "init": init or {}})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _replace_dir(final, root / LAST)
    if keep > 0:
        _prune(root, keep)
    return final


def _link_or_copy(src: str, dst: str) -> None:
    """Hard links: `last/` costs no disk (checkpoint files are never rewritten in place)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _replace_dir(src: Path, dst: Path) -> None:
    """Mirror `src` as `dst` so `dst` is never half-written: build it beside, then swap."""
    tmp = dst.with_name(dst.name + ".incomplete")
    old = dst.with_name(dst.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=_link_or_copy)
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)


def _prune(root: Path, keep: int) -> None:
    steps = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    for s in steps[:-keep]:
        shutil.rmtree(root / str(s), ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """`RUN/checkpoints/last` (or a `last.old` left by a crash mid-swap) when it holds a resume
    state; None when the run has no complete checkpoint."""
    root = Path(run_dir) / "checkpoints"
    for cand in (root / LAST, root / f"{LAST}.old"):
        if (cand / STATE).is_file() and (cand / WEIGHTS).is_file():
            return cand
    return None


def find_resume_dir(run_dir: Path, resume: str) -> Path | None:
    """`--resume latest` → the run's latest checkpoint, or None when it has none (a fresh start);
    `--resume PATH` → that checkpoint or run dir (a user error when it holds no resume state)."""
    if resume == "latest":
        return latest_checkpoint(run_dir)
    ckpt = resolve_checkpoint_dir(resume)
    if not (ckpt / STATE).is_file():
        raise fail(f"no {STATE} (resume state)", str(ckpt), "pass a checkpoint written by focus-train")
    return ckpt


def load_state(ckpt: Path) -> dict:
    """The resume dict of `state.pt` (holds RNG states and optimizer tensors: weights_only=False)."""
    return torch.load(ckpt / STATE, map_location="cpu", weights_only=False)

"""Checkpoints (docs/design.md §3.5): Hugging Face model folders, plus the state `--resume` needs.

Layout of `RUN/checkpoints/<step or "last">/`:
    config.json          FocusCLIPConfig (`model_type: focusclip`): encoder shapes, embed_dim, triple,
                         image_size, pixel normalisation, where the tower weights (`provenance`) and the data came from
    model.safetensors    the weights (`save_pretrained`)
    tokenizer.json, tokenizer_config.json, …   the tokenizer files (`AutoTokenizer` loads the folder)
    preprocessor_config.json, processor_config.json   a CLIP image processor with the training size,
                         geometry and mean/std, and with the tokenizer a CLIPProcessor (`AutoProcessor`)
    train_config.yaml    the resolved training config (its data.resize is the geometry eval uses)
    README.md            the model card (training/card.py)
    training_state/      state.pt (optimizer, scheduler, step, epoch, data position, RNG states) and
                         progress.json (step, epoch): for `--resume` only, never pushed

so `FocusCLIPModel.from_pretrained(dir)` (or `AutoModel`, with focusclip imported) loads it. The layout
before that (`tokenizer/`, `state.pt`, `meta.json` beside a hand-written config.json) still loads and
resumes; its config.json keys are FocusCLIPConfig's.

Eval code uses only `load_checkpoint` and `LoadedModel`:

    from focusclip.training import load_checkpoint
    m = load_checkpoint("runs/focusclip", device="cuda")     # or .../checkpoints/1200, or USER/NAME
    x = torch.stack([m.preprocess(img) for img in pil_images])   # [B, 3, S, S]
    img = m.encode_images(x)                                   # [B, D], unit norm
    txt = m.encode_texts(["a photo of a person running"])     # [N, D], unit norm
    logits = img @ txt.T
"""
from __future__ import annotations

import functools
import json
import os
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from focusclip.core.errors import fail, os_error_parts, printable, reading
from focusclip.core.hub import file_sha256, quiet_transformers
from focusclip.core.io import atomic_write_text, give_umask_mode, write_json

WEIGHTS = "model.safetensors"
MODEL_CONFIG = "config.json"
TRAIN_CONFIG = "train_config.yaml"
CARD = "README.md"
STATE_DIR = "training_state"
STATE = f"{STATE_DIR}/state.pt"
PROGRESS = f"{STATE_DIR}/progress.json"
LAST = "last"
# the layout before the Hugging Face model folder
OLD_TOKENIZER_DIR, OLD_STATE, OLD_META = "tokenizer", "state.pt", "meta.json"
# what the one line about a checkpoint file that does not parse tells the user (--resume says its own)
DAMAGED = "pass a checkpoint focus-train wrote; a damaged copy needs saving again"


@dataclass
class LoadedModel:
    """A trained FocusCLIP/CLIP model ready for zero-shot evaluation (plain CLIP at inference).

    `model` is the FocusCLIPModel in eval mode on `device`; `tokenizer` a Hugging Face fast
    tokenizer; `image_size` the square side S the model was trained at; `name` the model name of its
    config (e.g. "focusclip", "clip") followed by the checkpoint step, e.g. "focusclip@1200".
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
        return torch.cat(outs) if outs else pixels.new_zeros(0, self.model.config.embed_dim)

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
        return torch.cat(outs) if outs else torch.zeros(0, self.model.config.embed_dim, device=self.device)


# ------------------------------------------------------------------------------------------ finding


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


def locate_checkpoint(path_or_id: str | os.PathLike) -> Path:
    """A local checkpoint (as `resolve_checkpoint_dir`), or a hub model id `USER/NAME` that is not a
    local path: downloaded into the hub cache (honours `HF_HUB_OFFLINE`), without training state."""
    from focusclip.core.hub_repo import download_snapshot, names_hub_repo

    text = os.fspath(path_or_id)
    if not names_hub_repo(text):
        return resolve_checkpoint_dir(text)
    folder = download_snapshot(text, "model", ignore=(f"{STATE_DIR}/*",))
    if not (folder / WEIGHTS).is_file() or not (folder / MODEL_CONFIG).is_file():
        raise fail(f"the hub model has no {WEIGHTS} + {MODEL_CONFIG}, and no local folder has that name",
                   text, "pass a model pushed with `focus-train push`, or a local checkpoint folder")
    return folder


def is_old_layout(ckpt: Path) -> bool:
    return (ckpt / OLD_TOKENIZER_DIR).is_dir() or (ckpt / OLD_STATE).is_file()


def tokenizer_dir(ckpt: Path) -> Path:
    """Where a checkpoint's tokenizer files are: the root, or `tokenizer/` in the old layout."""
    old = ckpt / OLD_TOKENIZER_DIR
    return old if old.is_dir() else ckpt


def state_file(ckpt: Path) -> Path:
    new = ckpt / STATE
    return new if new.is_file() or not (ckpt / OLD_STATE).is_file() else ckpt / OLD_STATE


def checkpoint_step(ckpt: Path, config) -> int | str:
    """The optimizer step a checkpoint was written at ("last" when nothing records it)."""
    if getattr(config, "training_step", None) is not None:
        return config.training_step
    for meta in (ckpt / PROGRESS, ckpt / OLD_META):
        if meta.is_file():
            found = _read_json(meta)
            return found.get("step", "last") if isinstance(found, dict) else "last"
    return ckpt.name if ckpt.name.isdigit() else "last"


# ------------------------------------------------------------------------------------------ loading


def load_model(ckpt: Path, fix: str = DAMAGED):
    """The FocusCLIPModel of a checkpoint folder (either layout), on the CPU, with every weight
    accounted for (a missing or unexpected key is a user error, never a silently random weight).
    A file that does not parse is one line naming it, with `fix`."""
    from safetensors import SafetensorError

    from focusclip.training.hf_config import FocusCLIPConfig
    from focusclip.training.model import FocusCLIPModel

    with reading(ckpt / MODEL_CONFIG, "the checkpoint's config", fix, (TypeError,)):
        config = FocusCLIPConfig.from_pretrained(str(ckpt), local_files_only=True)
    # through from_pretrained: the file holds transformers' saved key names, not state_dict()'s
    with quiet_transformers(), reading(ckpt / WEIGHTS, "the checkpoint's weights", fix, (TypeError, SafetensorError)):
        model, info = FocusCLIPModel.from_pretrained(str(ckpt), config=config, local_files_only=True,
                                                     output_loading_info=True)
    missing, unexpected = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
    if missing or unexpected or info.get("mismatched_keys"):
        raise fail(f"weights do not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]}, "
                   f"mismatched {list(info.get('mismatched_keys') or [])[:3]})", str(ckpt), fix)
    return model


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint for inference. `path`: a run dir (uses `checkpoints/last`), a checkpoint
    dir, or a hub model id `USER/NAME`. Needs no YAML: the model is rebuilt from `config.json`."""
    from focusclip.training.text import load_tokenizer

    ckpt = locate_checkpoint(path)
    device = torch.device(device)
    model = load_model(ckpt)
    model.to(device).eval()
    cfg = model.config
    with reading(tokenizer_dir(ckpt), "the checkpoint's tokenizer", DAMAGED):
        tokenizer = load_tokenizer(tokenizer_dir(ckpt))
    return LoadedModel(model=model, tokenizer=tokenizer, image_size=cfg.image_size,
                       name=f"{cfg.name}@{checkpoint_step(ckpt, cfg)}", device=device,
                       max_text_length=cfg.max_text_length, image_mean=tuple(cfg.image_mean),
                       image_std=tuple(cfg.image_std), path=ckpt, resize=trained_resize(ckpt))


def read_meta(ckpt: Path) -> dict:
    """The old layout's meta.json (step, epoch, and `init`: where each tower's weights came from)."""
    return _read_json(ckpt / OLD_META) if (ckpt / OLD_META).is_file() else {}


def _read_json(path: Path) -> Any:
    with reading(path, f"the checkpoint's {path.name}", DAMAGED):
        return json.loads(path.read_text(encoding="utf-8"))


def read_train_config(ckpt: Path) -> tuple[str | None, Any]:
    """(text, parsed) of the checkpoint's train_config.yaml, or (None, None) when it has none. A file
    that does not parse as plain YAML (a `!!python` tag safe_load refuses, nesting deep enough to
    exhaust the stack, not UTF-8) is one line naming it."""
    import yaml

    path = ckpt / TRAIN_CONFIG
    if not path.is_file():
        return None, None
    with reading(path, "the checkpoint's training config", DAMAGED, (yaml.YAMLError,)):
        text = path.read_text(encoding="utf-8")
        return text, yaml.safe_load(text)


def trained_resize(ckpt: Path) -> str:
    """The geometry the checkpoint was trained with: `data.resize` of its train_config.yaml, or
    "crop" for checkpoints written before the key existed (they were all centre-cropped)."""
    raw = read_train_config(ckpt)[1]
    data = raw.get("data") if isinstance(raw, dict) else None
    resize = data.get("resize", "crop") if isinstance(data, dict) else "crop"
    return resize if resize in ("squash", "letterbox", "crop") else "crop"


# ------------------------------------------------------------------------------------------- saving


def write_model_folder(folder: Path, model, tokenizer, train_config_yaml: str | None) -> None:
    """The files of a Hugging Face model folder: weights + config, tokenizer files, the training
    config and the model card written from them. `model` is the unwrapped FocusCLIPModel."""
    from focusclip.training.card import render_card

    if model.config.learn_temperature:   # the config says the τ the weights hold
        model.config.contrastive_temperature = float(model.temperature.detach())   # as the loss used it
    with quiet_transformers():
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        save_processor(folder, model.config, tokenizer, train_config_yaml)
    give_umask_mode(folder.iterdir())   # safetensors writes model.safetensors 0600
    if train_config_yaml is not None:
        atomic_write_text(folder / TRAIN_CONFIG, train_config_yaml)
    atomic_write_text(folder / CARD, render_card(model.config, train_config_yaml).content)


def save_processor(folder: Path, config, tokenizer, train_config_yaml: str | None) -> None:
    """`AutoImageProcessor`/`AutoProcessor` for the checkpoint: a CLIP image processor (bicubic, [0, 1], the
    model's mean/std) resizing as data.resize did: crop → shorter side S, centre crop; squash → S×S.
    Letterbox pads, which no transformers image processor does: it gets the squash (the card says so)."""
    import yaml
    from transformers import CLIPProcessor

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor   # transformers 5: no torchvision needed
    except ImportError:
        from transformers import CLIPImageProcessor as ImageProcessor
    raw = yaml.safe_load(train_config_yaml) if train_config_yaml else None
    data = raw.get("data") if isinstance(raw, dict) else None
    crop = (data.get("resize", "crop") if isinstance(data, dict) else "crop") == "crop"
    s = config.image_size
    images = ImageProcessor(size={"shortest_edge": s} if crop else {"height": s, "width": s}, do_center_crop=crop,
                            crop_size={"height": s, "width": s}, resample=3, do_rescale=True, do_normalize=True,
                            image_mean=list(config.image_mean), image_std=list(config.image_std))
    images.save_pretrained(str(folder))   # preprocessor_config.json: AutoImageProcessor, older transformers
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(str(folder))


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, tokenizer, train_config_yaml: str,
                    state: dict, keep: int = 0) -> Path:
    """Write `checkpoints/<step>/` (built in `<step>.incomplete`, renamed when complete) and mirror it
    as `checkpoints/last/`. `state` is the resume dict for `training_state/state.pt`. `keep > 0`
    keeps only that many numbered checkpoints (oldest deleted). A write that fails (a full disk) is
    one line naming the checkpoint; nothing of it is left and `last/` still holds the one before."""
    root = Path(run_dir) / "checkpoints"
    final = root / str(step)
    tmp = root / f"{step}.incomplete"
    shutil.rmtree(tmp, ignore_errors=True)
    model.config.training_step = step
    try:
        tmp.mkdir(parents=True)
        write_model_folder(tmp, model, tokenizer, train_config_yaml)
        (tmp / STATE_DIR).mkdir()
        save_torch(state, tmp / STATE)
        write_json(tmp / PROGRESS, {"step": step, "epoch": state.get("epoch")})
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = (f"checkpoints/{LAST}, the checkpoint before it, is kept" if latest_checkpoint(run_dir)
                else "the run has no checkpoint yet")
        raise _save_failed(e, final, "this checkpoint", kept) from None
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    try:
        _replace_dir(final, root / LAST)
    except BaseException as e:
        shutil.rmtree(root / f"{LAST}.incomplete", ignore_errors=True)
        raise _save_failed(e, root / LAST, f"it from checkpoint {step}",
                           f"checkpoint {step} is complete: --resume {final} continues from it") from None
    if keep > 0:
        _prune(root, keep)
    return final


def _save_failed(e: BaseException, where: Path, writing: str, kept: str) -> BaseException:
    """A failed checkpoint write (a full disk, quota, permissions) as one line naming `where`;
    anything else (a bug) unchanged."""
    error = written_error(e)
    if error is None:
        return e
    what, fix = os_error_parts(error)
    return fail(f"{what} while writing {writing}; {kept}", str(where), f"{fix}, then rerun with --resume latest")


def written_error(e: BaseException) -> OSError | None:
    """The OSError behind a failed write, or None when `e` is not one. safetensors' writer states
    it only in its text ("I/O error: No space left on device (os error 28)")."""
    from safetensors import SafetensorError

    if isinstance(e, OSError) and e.errno is not None:
        return e
    found = re.search(r"\(os error (\d+)\)", str(e)) if isinstance(e, SafetensorError) else None
    return OSError(int(found[1]), os.strerror(int(found[1]))) if found else None


class _Sink:
    """The file `torch.save` writes through, keeping the OSError of a failed write (torch reports
    it as `RuntimeError: [enforce fail …] unexpected pos`, without the errno)."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.file.flush()


def save_torch(obj, path: Path) -> None:
    """`torch.save(obj, path)`; a failed write raises its OSError (naming `path`), not torch's
    RuntimeError."""
    f = open(path, "wb")
    sink = _Sink(f)
    try:
        with f:
            torch.save(obj, sink)
    except (OSError, RuntimeError) as e:
        error = e if isinstance(e, OSError) else sink.error
        if error is None:
            raise
        raise OSError(error.errno, error.strerror, str(path)) from None


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


# ------------------------------------------------------------------------------------------- resume


def latest_checkpoint(run_dir: Path) -> Path | None:
    """`RUN/checkpoints/last` (or a `last.old` left by a crash mid-swap) when it holds a resume
    state; None when the run has no complete checkpoint."""
    root = Path(run_dir) / "checkpoints"
    for cand in (root / LAST, root / f"{LAST}.old"):
        if state_file(cand).is_file() and (cand / WEIGHTS).is_file():
            return cand
    return None


def find_resume_dir(run_dir: Path, resume: str) -> Path | None:
    """`--resume latest` → the run's latest checkpoint, or None when it has none (a fresh start);
    `--resume PATH` → that checkpoint or run dir (a user error when it holds no resume state)."""
    if resume == "latest":
        return latest_checkpoint(run_dir)
    ckpt = resolve_checkpoint_dir(resume)
    if not state_file(ckpt).is_file():
        raise fail(f"no {STATE} (resume state)", str(ckpt), "pass a checkpoint written by focus-train")
    return ckpt


# Unpickling damaged bytes can raise almost any exception (seen on random bytes: UnpicklingError,
# IndexError, KeyError, UnicodeDecodeError): a caller takes every Exception from `load_state` /
# `load_pickled` as a damaged file.
UNPICKLING_ERRORS = (Exception,)


def _numpy_rng_globals() -> list:
    """What pickling numpy's RNG state (`np.random.get_state()`: a uint32 key array) names: the only
    objects besides tensors, numbers, strings and plain containers that a state of ours holds.
    `_reconstruct` under both of its names: numpy 1 pickles it as `numpy.core.multiarray`, numpy 2 as
    `numpy._core.multiarray`. Rebuilding an array runs no code of the file's choosing: its class must
    be ndarray and its dtype a dtype (an object array's items are unpickled under the same rules)."""
    import numpy as np

    reconstruct = np.zeros(1, np.uint32).__reduce__()[0]
    return [np.ndarray, np.dtype, type(np.dtype(np.uint32)),
            (reconstruct, "numpy.core.multiarray._reconstruct"), (reconstruct, "numpy._core.multiarray._reconstruct")]


def load_pickled(path: Path, fix: str = DAMAGED):
    """A torch-saved file of ours (optimizer tensors, RNG states), unpickled without running code:
    `weights_only=True` admits tensors, numbers, strings and plain containers, and we add only numpy's
    RNG state. A pickle naming anything else (a function it would call) is refused before anything
    runs: one line naming `path`, with `fix`."""
    try:
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is long and advises turning the restriction off ("if you trust the source"); keep its
        # finding only: the global the pickle names, or what else the restricted unpickler refused
        named = re.search(r"unsupported (?:global: )?GLOBAL (\S{1,200})", str(e), re.I)   # allowed, or blocked
        if named is None:
            found = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(Check the documentation|$)", str(e), re.S)
            raise pickle.UnpicklingError(found[1] if found and found[1] else str(e)) from None
        raise fail(f"holds a Python object no focusclip state holds ({printable(named[1])}); unpickling it "
                   "could run code, so it was not loaded", str(path), fix) from None


def load_state(ckpt: Path, fix: str = DAMAGED) -> dict:
    """The resume dict (see `load_pickled`)."""
    return load_pickled(state_file(ckpt), fix)

"""The model interface zero-shot evaluation needs, and loading the models of a run once.

`focus-train` checkpoints (`training.checkpoint.LoadedModel`) and Hugging Face dual encoders
(`eval.dual_encoder.HFDualEncoder`: CLIP, SigLIP, …) both satisfy `EvalModel`; tests use small fakes
that do too. `sha256` names the weights: finished tasks in a results file are reused only for the same hash.

One argument names any of them (`model_kind` tells them apart by the folder's or the hub repo's
config.json): a focus-train run dir, checkpoint folder or pushed hub id `USER/NAME` (`model_type:
focusclip`), or any other save_pretrained folder or hub id of a dual encoder. `--hf-clip` names a dual
encoder directly (its models are called `hf-clip:<id>`, as before there was one argument for all).
A name that starts with `open_clip:` is an open_clip model (`eval.open_clip_model`: `open_clip:ARCH:PRETRAINED`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from focusclip.core.errors import fail


@runtime_checkable
class EvalModel(Protocol):
    name: str
    image_size: int
    sha256: str | None            # of the weights file; None: unknown (results are then never reused)

    def preprocess(self, image) -> torch.Tensor:
        """PIL image → FloatTensor[3, S, S] (or a dict of per-image tensors); runs in DataLoader
        workers, on the CPU."""

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] (a batch of `preprocess` outputs) → L2-normalised [B, D]."""

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """N strings → L2-normalised [N, D]."""


@dataclass(frozen=True)
class ModelSpec:
    name: str                     # what the user typed: a path or a hub id
    hf_clip: bool = False         # given with --hf-clip: a dual encoder, named hf-clip:<id>


def load_models(specs: list[ModelSpec], device: torch.device, resize: str | None = None,
                revision: str | None = None) -> list[EvalModel]:
    """Every model of a run, each loaded once (a focus-train checkpoint or a dual encoder, at
    `revision` for a hub id). Checkpoints preprocess the way they were trained (their
    train_config's data.resize) unless `resize` says otherwise; a dual encoder uses its own processor."""
    if not specs:
        raise fail("no model given", "focus-eval",
                   "name one or more models: a focus-train run or checkpoint, a hub id, or a save_pretrained folder")
    kinds = [("dual" if s.hf_clip else model_kind(s.name)) for s in specs]
    if resize is not None and "checkpoint" not in kinds:
        raise fail("--resize applies to focus-train checkpoints", "--resize",
                   "drop it: a CLIP preprocesses with its own image processor, as it was trained")
    if revision is not None and len(specs) > 1:
        raise fail("--revision names one revision, and there are several models", "--revision",
                   "evaluate the model at that revision on its own, or pass a local folder")
    return [_load(s, kind, device, resize, revision) for s, kind in zip(specs, kinds)]


def load_model(checkpoint: str | Path | None, hf_clip: str | None, device: torch.device,
               resize: str | None = None, revision: str | None = None) -> EvalModel:
    """Exactly one of a CHECKPOINT argument or --hf-clip (the single-model form of `load_models`)."""
    if (checkpoint is None) == (hf_clip is None):
        raise fail("give one model: a CHECKPOINT or --hf-clip ID_OR_DIR", "focus-eval",
                   "evaluate each model into its own results file and join them with --compare")
    return load_models([ModelSpec(str(checkpoint)) if hf_clip is None else ModelSpec(hf_clip, True)],
                       device, resize, revision)[0]


def _load(spec: ModelSpec, kind: str, device: torch.device, resize: str | None, revision: str | None) -> EvalModel:
    if kind == "open_clip":
        if revision is not None:
            raise fail("--revision applies to hub ids of Hugging Face models", "--revision",
                       "drop it: an open_clip tag names its weights")
        from focusclip.eval.open_clip_model import load_open_clip

        return load_open_clip(spec.name, device)
    if kind == "dual":
        from focusclip.eval.dual_encoder import load_dual_encoder

        if spec.hf_clip:
            return load_dual_encoder(spec.name, device, revision, key="--hf-clip", what="CLIP model", prefix="hf-clip")
        return load_dual_encoder(spec.name, device, revision, key=spec.name)
    if revision is not None:
        raise fail("--revision applies to hub ids of Hugging Face models", "--revision",
                   "drop it for a focus-train checkpoint")
    from focusclip.training.checkpoint import load_checkpoint

    # a damaged config.json, weights or tokenizer is one line naming that file (load_checkpoint says it)
    model = load_checkpoint(spec.name, device=device)
    if resize is not None:
        model.resize = resize
    return model


def model_kind(name: str) -> str:
    """"checkpoint" for a focus-train checkpoint (a run dir, a checkpoint folder, a pushed hub id),
    "dual" for another model folder or hub id with a config.json, "open_clip" for `open_clip:…` (the
    prefix wins over a folder of that name: ./open_clip:… is the folder). A name that is none of them
    is a checkpoint, so that load_checkpoint says what is missing."""
    from focusclip.core.hub_repo import names_hub_repo
    from focusclip.eval.open_clip_model import PREFIX as OPEN_CLIP     # imports no open_clip

    if name.startswith(OPEN_CLIP):
        return "open_clip"
    if names_hub_repo(name):
        config = _hub_config(name)
        try:
            return "checkpoint" if _is_focusclip(config) else "dual"
        except (OSError, ValueError, RecursionError):
            return "checkpoint"          # a damaged config.json: load_checkpoint names it
    path = Path(name).expanduser()
    for folder in (path, path / "checkpoints" / "last", path / "last"):
        config = folder / "config.json"
        if config.is_file():
            if (folder / "train_config.yaml").is_file() or (folder / "tokenizer").is_dir():
                return "checkpoint"      # written by focus-train (the old layout has tokenizer/)
            try:
                return "checkpoint" if _is_focusclip(config) else "dual"
            except (OSError, ValueError, RecursionError):
                return "checkpoint"      # a damaged config.json: load_checkpoint names it
    return "checkpoint"


def _is_focusclip(config: Path) -> bool:
    data = json.loads(config.read_text(encoding="utf-8"))
    return isinstance(data, dict) and data.get("model_type", "focusclip") == "focusclip"


def _hub_config(repo: str) -> Path:
    """The repo's config.json, through the hub cache (HF_HUB_OFFLINE: the cache only); a failure is
    the one line focus-train's hub downloads give."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    from focusclip.core.hub_repo import HTTP_ERROR, offline_error

    try:
        return Path(hf_hub_download(repo, "config.json"))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise fail("no such model on the hub, or it is private and the token cannot read it", repo,
                   "check the id (USER/NAME), or set HF_TOKEN to a token that may read it") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        raise offline_error(repo, "model", e) from None
    except EntryNotFoundError:
        raise fail("the hub model has no config.json, so it is neither a focus-train checkpoint nor a "
                   "transformers model", repo, "pass a model pushed with `focus-train push`, or a dual encoder") from None
    except (HTTP_ERROR, OSError) as e:
        raise fail(f"download failed: {' '.join(str(e).split())[:160]}", repo, "check the network and the id") from None

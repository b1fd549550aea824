"""The model interface zero-shot evaluation needs, and loading either kind of model once.

`focus-train` checkpoints (`training.checkpoint.LoadedModel`) and Hugging Face CLIPs
(`eval.hfclip.HFClip`) both satisfy `EvalModel`; tests use small fakes that do too. `sha256` names
the weights: finished tasks in a results file are reused only for the same hash.
"""
from __future__ import annotations

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
        """PIL image → FloatTensor[3, S, S]; runs in DataLoader workers, on the CPU."""

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] → L2-normalised [B, D]."""

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """N strings → L2-normalised [N, D]."""


def load_model(checkpoint: str | Path | None, hf_clip: str | None, device: torch.device,
               resize: str | None = None, revision: str | None = None) -> EvalModel:
    """Exactly one of a focus-train checkpoint (run dir, checkpoints/<step>, or a hub id USER/NAME) or a
    Hugging Face CLIP (hub id or folder, at `revision`). A checkpoint preprocesses the way it was trained (its
    train_config's data.resize) unless `resize` says otherwise; a CLIP uses its own processor."""
    if (checkpoint is None) == (hf_clip is None):
        raise fail("give one model: a CHECKPOINT or --hf-clip ID_OR_DIR", "focus-eval",
                   "evaluate each model into its own results file and join them with --compare")
    if hf_clip is not None:
        if resize is not None:
            raise fail("--resize applies to focus-train checkpoints", "--resize",
                       "drop it: a CLIP preprocesses with its own image processor, as it was trained")
        from focusclip.eval.hfclip import load_hf_clip

        return load_hf_clip(hf_clip, device, revision)
    if revision is not None:
        raise fail("--revision applies to --hf-clip hub ids", "--revision", "drop it for a checkpoint folder")
    from focusclip.training.checkpoint import load_checkpoint

    # a damaged config.json, weights or tokenizer is one line naming that file (load_checkpoint says it)
    model = load_checkpoint(checkpoint, device=device)
    if resize is not None:
        model.resize = resize
    return model

"""The model interface zero-shot evaluation needs, and loading either kind of model once.

`focus-train` checkpoints (`training.checkpoint.LoadedModel`) and Hugging Face CLIP folders
(`eval.hfclip.HFClip`) both satisfy `EvalModel`; tests use small fakes that do too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from focusclip.data.errors import fail, reading


@runtime_checkable
class EvalModel(Protocol):
    name: str
    image_size: int

    def preprocess(self, image) -> torch.Tensor:
        """PIL image → FloatTensor[3, S, S]; runs in DataLoader workers, on the CPU."""

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] → L2-normalised [B, D]."""

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """N strings → L2-normalised [N, D]."""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise fail("CUDA is not available", f"--device {device}", "use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise fail("unknown device", f"--device {device}", "use auto, cpu or cuda") from None


def load_model(checkpoint: str | Path | None, hf_clip: str | Path | None, device: torch.device) -> EvalModel:
    """Exactly one of a focus-train checkpoint (run dir or checkpoints/<step>) or a local HF CLIP dir."""
    if (checkpoint is None) == (hf_clip is None):
        raise fail("give one model: a CHECKPOINT or --hf-clip DIR", "focus-eval",
                   "evaluate each model into its own results file and join them with --compare")
    from safetensors import SafetensorError

    if hf_clip is not None:
        from focusclip.eval.hfclip import load_hf_clip

        with reading(hf_clip, "the Hugging Face CLIP model", _DAMAGED, (SafetensorError,)):
            return load_hf_clip(hf_clip, device)
    from focusclip.training.checkpoint import load_checkpoint

    # A damaged config.json, weights or tokenizer is one line naming the checkpoint, not a traceback.
    with reading(checkpoint, "the checkpoint", _DAMAGED, (SafetensorError,)):
        return load_checkpoint(checkpoint, device=device)


_DAMAGED = "pass a model folder written by focus-train (or save_pretrained); a damaged copy needs saving again"

"""`focus-data heatmaps --preview N`: overlays (image + coloured heatmap + skeleton) for people to check."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np
import torch

from focusclip.data.heatmaps import people_arrays, render_heatmaps, usable_joints
from focusclip.core.io import atomic_path
from focusclip.data.skeleton import LIMBS


def render_overlay(image_bgr: np.ndarray, heatmap: Any, people: Any) -> np.ndarray:
    """Image + JET-coloured heatmap (blended in proportion to the heat) + skeleton → BGR uint8.
    `heatmap`: [H, W] float in [0, 1] or uint8 (array or tensor; resized to the image if needed);
    `people`: a list of Person/dicts, or a (kpts [P, 16, 2], vis [P, 16]) pair."""
    hm = heatmap.detach().cpu().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap)
    hm_u8 = hm if hm.dtype == np.uint8 else np.round(np.clip(hm, 0, 1) * 255).astype(np.uint8)
    h, w = image_bgr.shape[:2]
    if hm_u8.shape != (h, w):
        hm_u8 = cv2.resize(hm_u8, (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(hm_u8, cv2.COLORMAP_JET).astype(np.float32)
    alpha = 0.6 * (hm_u8.astype(np.float32) / 255.0)[..., None]  # where the heat is 0: the photo as is
    out = (image_bgr.astype(np.float32) * (1 - alpha) + colour * alpha).astype(np.uint8)
    kpts, vis = _arrays(people)
    thick = max(1, round(max(h, w) / 300))
    for k, good in zip(kpts, usable_joints(kpts, vis)):
        for a, b in LIMBS:
            if good[a] and good[b]:
                cv2.line(out, _pt(k[a]), _pt(k[b]), (255, 255, 255), thick, cv2.LINE_AA)
        for j in np.flatnonzero(good):
            cv2.circle(out, _pt(k[j]), thick + 1, (0, 255, 0), -1, cv2.LINE_AA)
    return out


def _arrays(people: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(people, tuple) and len(people) == 2 and isinstance(people[0], (np.ndarray, torch.Tensor)):
        return (np.asarray(torch.as_tensor(people[0]).cpu(), dtype=np.float32),
                np.asarray(torch.as_tensor(people[1]).cpu()))
    return people_arrays(list(people or []))


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return int(min(xy[0], 1e6)), int(min(xy[1], 1e6))  # usable joints are finite and ≥ 0


def write_previews(items: Iterable[tuple[Path, tuple[int, int], np.ndarray, np.ndarray]], out_dir: Path,
                   n: int, mode: str, min_sigma: float) -> int:
    """Overlays of the first `n` (image path, (H, W), kpts, vis) whose image decodes at that size,
    as `out_dir/<stem>.png`. Returns how many were written."""
    written = 0
    for src, size, kpts, vis in items:
        if written >= n:
            break
        image = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if image is None or image.shape[:2] != tuple(size):
            continue
        hm = render_heatmaps((kpts, vis), size, mode, "cpu", min_sigma)
        ok, buf = cv2.imencode(".png", render_overlay(image, hm, (kpts, vis)))
        with atomic_path(out_dir / f"{Path(src).stem}.png") as tmp:
            tmp.write_bytes(buf.tobytes())
        written += 1
    return written

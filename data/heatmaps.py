"""The FocusCLIP ROI heatmap renderer (docs/design.md §3.3), batched torch tensors on any device.

Per person and per body part (data.skeleton.BODY_PARTS): the part's labelled joints (v > 0, at least
two), coordinates truncated to integers, give a box min..max; its centre is (min+max)//2 and its sigma
(max-min)//2 per axis, floored at `min_sigma`; the part is exp(-(dx²/2σx² + dy²/2σy²)). Parts of all
people are summed and the sum clipped to [0, 1]. `person` mode uses one box over all labelled joints.

The Gaussian is separable, so a part is the outer product gy ⊗ gx of two 1-D profiles, and the sum
over all parts of an image is one matrix product: Gy^T [H, N] @ Gx [N, W]. No H×W exponential is ever
computed. The same function renders the PNGs of `focus-data heatmaps` and the on-the-fly heatmaps of
training (keypoints scaled to the resized image by the caller).

Joints with a non-finite, negative or absurdly large (≥ 2**24) coordinate count as unlabelled here;
`bad_joints` lets a stage count them.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import torch

from focusclip.core.devices import resolve_device
from focusclip.core.errors import fail
from focusclip.data.skeleton import BODY_PARTS, NUM_JOINTS

MODES = ("parts", "person")
# Coordinates at or above this are treated as bad: float32 stops holding every integer there.
MAX_COORD = float(2 ** 24)
_FAR = 2 ** 40  # sentinel for min/max over masked joints (int64)
_TAIL = -40.0   # exp(-40) ≈ 4e-18: below it a profile value is set to exactly 0


# ---------------------------------------------------------------------------------------------- input


def _number(c: Any, default: float) -> float:
    """One JSON value as a float: null or garbage becomes `default` (a bad joint, not a crash)."""
    try:
        return float(c)
    except (TypeError, ValueError):
        return default


def people_arrays(people: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """People (data.records.Person or dicts with "kpts"/"kpts_vis") → (kpts [P, 16, 2] float32,
    vis [P, 16] int64). A malformed joint (null, missing, too short, not a list) becomes NaN with its
    visibility kept, so a labelled one counts as a bad coordinate, never a crash; a malformed
    visibility counts as unlabelled."""
    pks = [(p.get("kpts") if isinstance(p, dict) else p.kpts) for p in people]
    pvs = [(p.get("kpts_vis") if isinstance(p, dict) else p.kpts_vis) for p in people]
    try:  # the common, well-formed case: one NumPy call per field for all people
        kpts = np.asarray(pks, dtype=np.float32).reshape(len(people), NUM_JOINTS, 2)  # null → NaN
        vis = np.asarray(pvs, dtype=np.float64).reshape(len(people), NUM_JOINTS)
        if np.isfinite(vis).all():
            return kpts, vis.astype(np.int64)
    except (TypeError, ValueError):
        pass
    kpts = np.full((len(people), NUM_JOINTS, 2), np.nan, dtype=np.float32)
    vis = np.zeros((len(people), NUM_JOINTS), dtype=np.int64)
    for i, (pk, pv) in enumerate(zip(pks, pvs)):
        _person_slow(pk, pv, kpts[i], vis[i])
    return kpts, vis


def _person_slow(pk: Any, pv: Any, kpts: np.ndarray, vis: np.ndarray) -> None:
    """Fill one person's kpts [16, 2] and vis [16] joint by joint, tolerating any malformation."""
    pk = pk if isinstance(pk, (list, tuple, np.ndarray)) else []
    pv = pv if isinstance(pv, (list, tuple, np.ndarray)) else []
    for j in range(min(NUM_JOINTS, len(pv))):
        v = _number(pv[j], 0.0)
        vis[j] = int(v) if np.isfinite(v) else 0
        pt = pk[j] if j < len(pk) else None
        if isinstance(pt, (list, tuple, np.ndarray)) and len(pt) >= 2:
            kpts[j] = (_number(pt[0], np.nan), _number(pt[1], np.nan))


def usable_joints(kpts: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Labelled joints (v > 0) with a sound coordinate (finite, ≥ 0, < 2**24): bool [P, 16].
    These are the joints the renderer uses."""
    kpts = np.asarray(kpts, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        sound = (np.isfinite(kpts) & (kpts >= 0) & (kpts < MAX_COORD)).all(-1)
    return (np.asarray(vis) > 0) & sound


def bad_joints(kpts: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Labelled joints whose coordinate is non-finite, negative or ≥ 2**24: bool [P, 16]."""
    return (np.asarray(vis) > 0) & ~usable_joints(kpts, vis)


def _usable(kpts: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """Tensor twin of `usable_joints`: kpts [..., 16, 2], vis [..., 16] → bool [..., 16]."""
    sound = (torch.isfinite(kpts) & (kpts >= 0) & (kpts < MAX_COORD)).all(-1)
    return (vis > 0) & sound


def _is_arrays(item: Any) -> bool:
    """A (kpts, vis) pair of arrays/tensors, as opposed to a list or tuple of Person/dicts."""
    return (isinstance(item, tuple) and len(item) == 2
            and not isinstance(item[0], dict) and not hasattr(item[0], "kpts_vis"))


def _item_arrays(item: Any) -> tuple[np.ndarray, np.ndarray]:
    """One image's people → host arrays kpts [P, 16, 2] float32 and vis [P, 16] int64."""
    if _is_arrays(item):
        kpts, vis = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x for x in item)
    else:
        kpts, vis = people_arrays(list(item or []))
    kpts = np.asarray(kpts, dtype=np.float32).reshape(-1, NUM_JOINTS, 2)
    return kpts, np.asarray(vis).astype(np.int64, copy=False).reshape(-1, NUM_JOINTS)


def _on(t: torch.Tensor, device: torch.device) -> bool:
    """Is `t` on `device`? ('cuda' without an index means the current CUDA device.)"""
    if t.device.type != device.type:
        return False
    index = device.index if device.index is not None else (
        torch.cuda.current_device() if device.type == "cuda" else t.device.index)
    return t.device.index == index


def _pad_batch(batch: Sequence[Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image people → padded kpts [B, P, 16, 2] and vis [B, P, 16] on `device` (padding is
    unlabelled). Tensor pairs already on `device` are padded there (training's on-the-fly path);
    anything else is padded on the host and moved in one copy each."""
    if all(_is_arrays(it) and isinstance(it[0], torch.Tensor) and _on(it[0], device)
           and isinstance(it[1], torch.Tensor) and _on(it[1], device) for it in batch):
        items = [(k.to(torch.float32).reshape(-1, NUM_JOINTS, 2), v.reshape(-1, NUM_JOINTS))
                 for k, v in batch]
        p_max = max([k.shape[0] for k, _ in items] + [1])
        kpts = torch.zeros((len(items), p_max, NUM_JOINTS, 2), dtype=torch.float32, device=device)
        vis = torch.zeros((len(items), p_max, NUM_JOINTS), dtype=torch.int64, device=device)
    else:
        items = [_item_arrays(it) for it in batch]
        p_max = max([k.shape[0] for k, _ in items] + [1])
        kpts = np.zeros((len(items), p_max, NUM_JOINTS, 2), dtype=np.float32)
        vis = np.zeros((len(items), p_max, NUM_JOINTS), dtype=np.int64)
    for b, (k, v) in enumerate(items):
        kpts[b, : k.shape[0]] = k
        vis[b, : v.shape[0]] = v
    if isinstance(kpts, np.ndarray):
        return torch.from_numpy(kpts).to(device), torch.from_numpy(vis).to(device)
    return kpts, vis


# --------------------------------------------------------------------------------------------- render


def part_membership(mode: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool [K, 16]: which joints make each part (K = 10 in `parts` mode, 1 in `person` mode)."""
    return _membership(mode, str(device)).clone()


@functools.lru_cache(maxsize=16)
def _membership(mode: str, device: str) -> torch.Tensor:
    # A constant table per device, built once: rebuilding it cost a tenth of a small render.
    if mode == "parts":
        m = torch.zeros((len(BODY_PARTS), NUM_JOINTS), dtype=torch.bool)
        for k, joints in enumerate(BODY_PARTS.values()):
            m[k, list(joints)] = True
    elif mode == "person":
        m = torch.ones((1, NUM_JOINTS), dtype=torch.bool)
    else:
        raise fail(f"unknown heatmap mode '{mode}'", "--mode", f"use one of {', '.join(MODES)}")
    return m.to(device)


def part_gaussians(kpts: torch.Tensor, vis: torch.Tensor, mode: str = "parts",
                   min_sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Gaussians of §3.3 for padded people: kpts [B, P, 16, 2], vis [B, P, 16] →
    centre [B, N, 2] (int64, x then y), sigma [B, N, 2] (float32), active [B, N] (bool), N = P·K."""
    member = _membership(mode, str(kpts.device))                             # [K, 16]
    usable = _usable(kpts, vis)                                              # [B, P, 16]
    xy = torch.where(usable[..., None], kpts, 0).floor().to(torch.int64)    # truncation (all ≥ 0)
    m = usable[:, :, None, :] & member[None, None]                           # [B, P, K, 16]
    xy = xy[:, :, None]                                                      # [B, P, 1, 16, 2]
    lo = torch.where(m[..., None], xy, _FAR).amin(-2)                        # [B, P, K, 2]
    hi = torch.where(m[..., None], xy, -1).amax(-2)                          # [B, P, K, 2]
    active = m.sum(-1) >= 2                                                  # [B, P, K]
    lo = torch.where(active[..., None], lo, 0)
    hi = torch.where(active[..., None], hi, 0)
    centre = torch.div(lo + hi, 2, rounding_mode="floor")
    sigma = torch.div(hi - lo, 2, rounding_mode="floor").to(torch.float32).clamp_min(min_sigma)
    b = kpts.shape[0]
    return centre.reshape(b, -1, 2), sigma.reshape(b, -1, 2), active.reshape(b, -1)


def _profiles(centre: torch.Tensor, sigma: torch.Tensor, active: torch.Tensor, length: int,
              axis: int) -> torch.Tensor:
    """1-D Gaussian profiles along one axis: [B, N, length], zero for inactive parts."""
    grid = torch.arange(length, device=centre.device, dtype=torch.float32)  # exact integers < 2**24
    # An inactive part gets a centre far outside and a negative scale, so its profile is exactly 0.
    c = torch.where(active, centre[..., axis].to(torch.float32), -(2.0 ** 30))[..., None]
    k = torch.where(active, -0.5 / sigma[..., axis].square(), -1.0)[..., None]
    arg = (grid - c).square_().mul_(k)                                      # -dx²/2σ², [B, N, L]
    # Exactly 0 where exp < 4e-18: subnormal floats from the far tails would slow the matmul
    # several-fold on x86 and change nothing visible.
    torch.nn.functional.threshold_(arg, _TAIL, -float("inf"))
    return arg.exp_()


def _check(size: Sequence[int], mode: str, min_sigma: float) -> tuple[int, int]:
    if mode not in MODES:
        raise fail(f"unknown heatmap mode '{mode}'", "--mode", f"use one of {', '.join(MODES)}")
    if not (min_sigma > 0 and np.isfinite(min_sigma)):
        raise fail(f"min_sigma must be a positive number, got {min_sigma}", "--min-sigma", "e.g. 1")
    h, w = (int(x) for x in size)
    if h < 1 or w < 1:
        raise fail(f"heatmap size must be positive, got {h}x{w}", "size", "pass (height, width)")
    return h, w


def render_padded(kpts: torch.Tensor, vis: torch.Tensor, size: Sequence[int], mode: str = "parts",
                  min_sigma: float = 1.0, out: torch.Tensor | None = None, peak: float = 1.0) -> torch.Tensor:
    """The core: padded kpts [B, P, 16, 2] and vis [B, P, 16] (any device) → float32 [B, H, W] in
    [0, peak]. `out` (float32 [B, H, W] on the same device) is filled and returned: on a CPU, reusing
    it saves the page faults of a fresh multi-megabyte buffer per batch, which cost more than the
    maths. `peak=255` yields 8-bit levels before rounding without another pass over the pixels."""
    h, w = _check(size, mode, min_sigma)
    centre, sigma, active = part_gaussians(kpts, vis, mode, float(min_sigma))
    gx = _profiles(centre, sigma, active, w, 0)                     # [B, N, W]
    gy = _profiles(centre, sigma, active, h, 1)                     # [B, N, H]
    if peak != 1.0:
        gx.mul_(peak)
    # Σ_n gy[n] ⊗ gx[n] = Gy^T @ Gx: the sum of outer products is one batched matmul.
    out = torch.bmm(gy.transpose(1, 2), gx, out=out)               # [B, H, W]
    return out.clamp_(0.0, peak)


def render_heatmaps_batch(batch: Sequence[Any], size: Sequence[int], mode: str = "parts",
                          device: str | torch.device = "cpu", min_sigma: float = 1.0,
                          out: torch.Tensor | None = None) -> torch.Tensor:
    """Heatmaps of several images of one size → float32 [B, H, W] in [0, 1] on `device`.

    `batch` holds one `people` value per image: a list of Person (or dicts with "kpts"/"kpts_vis"),
    or a (kpts [P, 16, 2], vis [P, 16]) pair of arrays or tensors. `size` is (height, width).
    `out`: an optional float32 [B, H, W] buffer on `device` to render into (see `render_padded`)."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    h, w = _check(size, mode, min_sigma)
    if len(batch) == 0:
        return torch.zeros((0, h, w), dtype=torch.float32, device=dev)
    kpts, vis = _pad_batch(batch, dev)
    return render_padded(kpts, vis, (h, w), mode, min_sigma, out=out)


def render_heatmaps(people: Any, size: Sequence[int], mode: str = "parts",
                    device: str | torch.device = "cpu", min_sigma: float = 1.0) -> torch.Tensor:
    """One image's heatmap → float32 [H, W] in [0, 1] on `device`. `people` as in
    `render_heatmaps_batch`; `size` is (height, width)."""
    return render_heatmaps_batch([people], size, mode, device, min_sigma)[0]


def to_uint8(heatmaps: torch.Tensor) -> torch.Tensor:
    """[…, H, W] in [0, 1] → uint8 round(255 · value), on the same device (4× less to copy back)."""
    return (heatmaps * 255.0).round_().to(torch.uint8)

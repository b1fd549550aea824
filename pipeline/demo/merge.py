"""The demo's one in-process step: join the synthetic annotations (and real MPII ones, when given)
into `data/annotations.jsonl` with one image folder, `data/images/`, of links to the originals.

Later stages take one annotations file and one image folder, so this is what lets real MPII images
train beside the synthetic ones without copying gigabytes.
"""
from __future__ import annotations

import os
from pathlib import Path

from focusclip.core.io import read_jsonl, write_jsonl
from focusclip.pipeline.demo.layout import DemoOptions, Layout, Outcome, real_images


def merge_annotations(opt: DemoOptions, lay: Layout) -> Outcome:
    if not lay.synth_annotations.is_file():
        return Outcome("merge", "waiting", f"needs {lay.synth_annotations} (convert)")
    if lay.annotations.is_file() and lay.images.exists():
        return Outcome("merge", "reused", f"{lay.annotations} exists")
    synthetic = read_jsonl(lay.synth_annotations)
    real = _real_records(opt, lay, {r["image"] for r in synthetic})
    if not real:   # one link to the synthetic image folder, relative so the run folder can move
        _replace_link(lay.images, os.path.relpath(lay.world_images, lay.images.parent))
    else:
        lay.images.mkdir(parents=True, exist_ok=True)
        for rec in synthetic:
            _replace_link(lay.images / rec["image"], (lay.world_images / rec["image"]).resolve())
        for rec in real:
            _replace_link(lay.images / rec["image"], (real_images(opt.mpii_dir) / rec["image"]).resolve())
    n = write_jsonl(lay.annotations, synthetic + real)
    detail = f"{len(synthetic)} synthetic" + (f" + {len(real)} real MPII" if real else "") + f" = {n} images"
    return Outcome("merge", "ran", f"{detail} → {lay.annotations}")


def _real_records(opt: DemoOptions, lay: Layout, taken: set[str]) -> list[dict]:
    """Real MPII train/val images with labelled people and an image on disk, at most `mpii_limit`."""
    if opt.mpii_dir is None or not lay.real_annotations.is_file():
        return []
    out = []
    for rec in read_jsonl(lay.real_annotations):
        if len(out) >= opt.mpii_limit:
            break
        labelled = any(v > 0 for p in rec.get("people", []) for v in p["kpts_vis"])
        on_disk = (real_images(opt.mpii_dir) / rec["image"]).is_file()
        if rec.get("split") != "test" and labelled and on_disk and rec["image"] not in taken:
            out.append(rec)
    return out


def _replace_link(link: Path, target: str | os.PathLike) -> None:
    if link.is_symlink() or link.is_file():
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=Path(link.parent, target).is_dir())

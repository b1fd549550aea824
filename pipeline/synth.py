"""`focus-data synth`: write the synthetic world (training images in the MPII layout + eval sets).

Layout under the output folder:
    mpii/mpii_human_pose_v1_u12_1.mat   the MPII release layout (1-based, is_visible, act, splits)
    mpii/images/<9 digits>.jpg
    mpii/truth.jsonl                    the generator's own 0-based records (what convert must return)
    eval/stanford40/...                 Stanford 40 Actions layout, drawn classes only
    eval/utkface/UTKFace/...            UTKFace layout, child vs adult
    report.json                         counts and the options; its presence marks the world done
"""
from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path


from focusclip.core.errors import fail
from focusclip.core.io import read_json
from focusclip.core.report import Report
from focusclip.core.preflight import writable_dir
from focusclip.data.synthetic.world import MAT_NAME, WorldConfig, generate_mpii
from focusclip.data.synthetic.evalsets import DRAWN_CLASSES, generate_stanford40, generate_utkface, stanford40_counts
from focusclip.core.progress import progress as progress_bar


MAX_BYSTANDERS = 4


def world_paths(out: str | os.PathLike) -> dict[str, Path]:
    """Where the pieces of a world written to `out` live."""
    out = Path(out)
    return {"mat": out / "mpii" / MAT_NAME, "images": out / "mpii" / "images",
            "truth": out / "mpii" / "truth.jsonl", "eval_root": out / "eval", "report": out / "report.json"}


def run_synth(out: str | os.PathLike, n_train: int = 2000, n_eval: int = 280, seed: int = 0,
              clutter: float = 1.0, force: bool = False, progress: bool = True,
              workers: int | None = None, bystanders: int = 0) -> Report:
    """Generate the world under `out`; a finished world with the same options is kept as it is.
    `workers` processes draw the training images (default: one per core; the world is the same).
    `bystanders`: unannotated people doing other activities beside the subjects of every training
    and Stanford 40 image (data/synthetic/world.py; 0: the world without them)."""
    for name, value, least in (("--n-train", n_train, 1), ("--n-eval", n_eval, 0), ("--seed", seed, 0),
                               ("--clutter", clutter, 0)):
        if value < least:
            raise fail(f"must be at least {least}, got {value}", name, f"pass {name} {least} or more")
    if not 0 <= bystanders <= MAX_BYSTANDERS:
        raise fail(f"must be between 0 and {MAX_BYSTANDERS}, got {bystanders}", "--bystanders",
                   f"pass --bystanders 0 to {MAX_BYSTANDERS}: a {WorldConfig.width}-pixel frame holds 3 subjects and "
                   f"{MAX_BYSTANDERS} bystanders side by side")
    writable_dir(out)
    cfg = WorldConfig(clutter=clutter, bystanders=bystanders)
    options = {"out": str(out), "n_train": n_train, "n_eval": n_eval, "seed": seed, "world": asdict(cfg)}
    paths = world_paths(out)
    report = Report("synth", options)
    if paths["report"].is_file() and not force:
        done = read_json(paths["report"])
        before = done.get("options", {})
        if isinstance(before.get("world"), dict):   # a world written before bystanders existed had none
            before = before | {"world": {"bystanders": 0, **before["world"]}}
        if before | {"out": str(out)} == options:
            report.counts = dict(done.get("counts", {}))
            report.extra["reused"] = True
            return report
        raise fail("holds a world made with other options", str(paths["report"]),
                   "pass --force to regenerate it, or choose another -o")
    for stale in (paths["images"], paths["eval_root"]):   # a forced or interrupted run starts clean
        shutil.rmtree(stale, ignore_errors=True)
    paths["report"].unlink(missing_ok=True)
    _generate(paths, n_train, n_eval, seed, cfg, report, progress, workers or os.cpu_count() or 1)
    report.save(paths["report"])
    return report


def _generate(paths: dict[str, Path], n_train: int, n_eval: int, seed: int, cfg: WorldConfig,
              report: Report, progress: bool, workers: int) -> None:
    per_train, per_test = stanford40_counts(n_eval)
    total = n_train + (per_train + per_test) * len(DRAWN_CLASSES) + n_eval
    bar = progress_bar(total=total, desc="synth", unit="img", disable=not progress, leave=False)
    records = generate_mpii(paths["mat"].parent, n_train, seed, cfg, progress=bar.update, workers=workers)
    report.count("images", len(records))
    report.count("people", sum(len(r.people) for r in records))
    report.count("labelled_joints", sum(p.num_labelled for r in records for p in r.people))
    report.count("occluded_joints", sum(v == 1 for r in records for p in r.people for v in p.kpts_vis))
    for split, n in Counter(r.split for r in records).items():
        report.count(f"split_{split}", n)
    report.extra["activities"] = dict(Counter(r.activity or "(test)" for r in records))
    stanford = generate_stanford40(paths["eval_root"], n_eval, seed, cfg, progress=bar.update)
    report.count("stanford40_test", sum(len(s["test"]) for s in stanford.values()))
    report.count("stanford40_train", sum(len(s["train"]) for s in stanford.values()))
    ages = generate_utkface(paths["eval_root"], n_eval, seed, cfg, progress=bar.update)
    report.count("utkface_images", len(ages))
    report.count("utkface_children", sum(a < 10 for a in ages.values()))
    bar.close()

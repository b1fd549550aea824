"""`focus-data publish`: annotations + filtered descriptions → the hub-ready MPII Pose Descriptions
folder (docs/design.md §3.4), optionally pushed to the hub in one commit.

The folder is built in `DIR.incomplete` and renamed over `DIR` only when complete, so a failure leaves
no partial folder. A folder already built from the same inputs and options, still holding every file
its report lists at the recorded size, is kept (`--force` rebuilds); any other is rebuilt. One process
per folder (`DIR.lock`). Without `--push` nothing touches the network.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Mapping

from focusclip.core.errors import FocusError, fail
from focusclip.core.io import read_json, read_jsonl
from focusclip.core.lock import output_lock
from focusclip.core.report import Report, report_path_for
from focusclip.core.preflight import writable_dir
from focusclip.core.progress import progress
from focusclip.pipeline.describe.shards import check_shards, expand_paths
from focusclip.pipeline.publish.card import PRETTY_NAME, ConfigSummary, render_card
from focusclip.pipeline.publish.folder import list_files, why_not_intact
from focusclip.pipeline.publish.hub import check_repo_id, check_token, push_folder
from focusclip.pipeline.publish.rows import (HUB_SPLITS, ConfigInput, check_config_names, features,
                                   index_annotations, load_config, to_row)
from focusclip.pipeline.publish.shards import parse_shard_size, write_split


# Bumped when the folder's layout or columns change, so folders built by older code are rebuilt.
LAYOUT_VERSION = 2   # 2: a `default: true` config in the card


@dataclass(frozen=True)
class PublishOptions:
    """One publish run, as `focus-data publish` takes it; `resolve_options` checks it into a PublishPlan."""
    annotations: Path
    descriptions: Mapping[str, Path]               # config name → descriptions JSONL (or a glob of shards)
    out_dir: Path
    splits: tuple[str, ...] = ("train", "validation")   # hub split names
    include_test: bool = False                     # also the MPII test images (the "test" split)
    with_images: bool = False
    images_dir: Path | None = None
    heatmaps_dir: Path | None = None
    max_shard_size: str = "500MB"                  # uncompressed Arrow data per shard
    repo_id: str | None = None
    push: bool = False
    private: bool = False
    force: bool = False                            # rebuild a folder that is up to date
    prompts_dir: Path | None = None                # prompt templates (None: the prompts package's)
    default_config: str | None = None              # load_dataset(DIR)'s config (None: the first given)
    allow_incomplete_shards: bool = False          # publish shards that miss images or repeat one


@dataclass(frozen=True)
class PublishPlan:
    """Resolved, validated options of one publish run."""
    annotations: Path
    descriptions: tuple[tuple[str, Path], ...]     # (config name, descriptions JSONL); a name per shard file
    out_dir: Path
    splits: tuple[str, ...]                        # hub split names, in order
    with_images: bool
    images_dir: Path | None
    heatmaps_dir: Path | None
    max_shard_size: int                            # bytes of uncompressed Arrow data per shard
    repo_id: str | None
    push: bool
    private: bool
    prompts_dir: Path | None
    default_config: str                            # `default: true` in the card (load_dataset(DIR))
    allow_incomplete_shards: bool = False

    @property
    def incomplete(self) -> Path:
        return self.out_dir.with_name(self.out_dir.name + ".incomplete")


def run_publish(opts: PublishOptions) -> Report:
    """Build `opts.out_dir` (one config per entry of `opts.descriptions`) and push it when `opts.push`.
    Once the options are checked the run holds `DIR.lock` (one process per folder) to its end; under
    it a `DIR.incomplete` left by a killed run is removed first."""
    plan = resolve_options(opts)
    with output_lock(plan.out_dir, "-o"):
        shutil.rmtree(plan.incomplete, ignore_errors=True)
        return _publish(plan, opts.force)


def _publish(plan: PublishPlan, force: bool) -> Report:
    report = Report("publish", {**asdict(plan), "force": force})
    fingerprint = input_fingerprint(plan)
    previous = previous_report(plan.out_dir)
    why = None if previous is None else "--force" if force else why_stale(previous, fingerprint, plan.out_dir)
    if previous is not None and why is None:
        report.counts.update(previous.get("counts", {}))
        report.extra.update(up_to_date=True, fingerprint=fingerprint, configs=previous.get("configs", {}),
                            files=previous["files"])
    else:
        if why is not None:
            report.extra["rebuilt_because"] = why
        build(plan, report, fingerprint)
    if plan.push:
        message, description = commit_text(report.extra["configs"], plan)
        report.extra["push"] = push_folder(plan.out_dir, plan.repo_id, plan.private, message, description)
        report.save(plan.out_dir / "report.json")
    return report


def _dir(path, flag: str) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_dir():
        raise fail("folder not found", str(path), f"check the path given to {flag}")
    return path


def resolve_options(opts: PublishOptions) -> PublishPlan:
    """Check every option and input path before anything is written (bad input → one-line error)."""
    annotations, descriptions = Path(opts.annotations), opts.descriptions
    if not annotations.is_file():
        raise fail("annotations file not found", str(annotations), "pass the annotations.jsonl of `convert`")
    if not descriptions:
        raise fail("no descriptions given", "--descriptions", "pass --descriptions NAME=PATH at least once")
    check_config_names(list(descriptions))
    default_config = opts.default_config or next(iter(descriptions))
    if default_config not in descriptions:
        raise fail(f"'{default_config}' is not one of the configs ({', '.join(descriptions)})", "--default-config",
                   "name one of the --descriptions NAMEs")
    described = []   # a glob PATH names the shard files of one config (describe --shard I/N)
    for name, path in descriptions.items():
        if set("*?[") & set(str(path)):
            described += [(name, p) for p in expand_paths([path], f"--descriptions {name}")]
        elif not Path(path).is_file():
            raise fail("descriptions file not found", str(path), f"check the PATH of --descriptions {name}=PATH")
        else:
            described.append((name, Path(path)))
    splits = tuple(dict.fromkeys([*opts.splits, *(["test"] if opts.include_test else [])]))
    bad = [s for s in splits if s not in HUB_SPLITS]
    if bad or not splits:
        raise fail(f"unknown split {bad}", "splits", f"use {', '.join(HUB_SPLITS)}")
    if opts.with_images and opts.images_dir is None:
        raise fail("--with-images needs the MPII images", "--images", "pass --images DIR")
    if not opts.with_images and (opts.images_dir is not None or opts.heatmaps_dir is not None):
        raise fail("--images/--heatmaps are only used with --with-images", "--with-images",
                   "add --with-images to embed them, or drop those options")
    if opts.push and not opts.repo_id:
        raise fail("--push needs a repository", "--repo-id", "pass --repo-id USER/NAME")
    if opts.repo_id:
        check_repo_id(opts.repo_id)
    if opts.push:
        check_token()
    out_dir = writable_dir(opts.out_dir, beside=True)   # built in DIR.incomplete beside it, then renamed
    return PublishPlan(annotations, tuple(described), out_dir, splits,
                       bool(opts.with_images), _dir(opts.images_dir, "--images"),
                       _dir(opts.heatmaps_dir, "--heatmaps"),
                       parse_shard_size(opts.max_shard_size), opts.repo_id, bool(opts.push), bool(opts.private),
                       Path(opts.prompts_dir) if opts.prompts_dir else default_prompts_dir(), default_config,
                       bool(opts.allow_incomplete_shards))


def default_prompts_dir() -> Path | None:
    """`templates/` of the installed prompts package, where versioned prompt templates live."""
    from focusclip.prompts.fill import TEMPLATES_DIR

    return TEMPLATES_DIR if TEMPLATES_DIR.is_dir() else None


def input_fingerprint(plan: PublishPlan) -> str:
    """Hash of every input file (and filter report) and of the options that shape the folder.
    Image files are not hashed (too many): after changing them, rebuild with --force."""
    h = hashlib.sha256(f"layout {LAYOUT_VERSION}".encode())
    shaping = {k: v for k, v in asdict(plan).items() if k not in ("push", "private", "out_dir")}
    h.update(repr(sorted(shaping.items())).encode())
    paths = [plan.annotations] + [p for _, p in plan.descriptions]
    paths += [report_path_for(p) for _, p in plan.descriptions]
    for path in paths:
        h.update(str(path).encode())
        if path.is_file():
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def previous_report(out_dir: Path) -> dict | None:
    """The report of an earlier publish into out_dir; a user error when out_dir holds something else
    (so --force never deletes a folder this command did not make)."""
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return None
    path = out_dir / "report.json"
    try:
        rep = read_json(path)
    except FocusError:
        rep = None
    if not isinstance(rep, dict) or rep.get("stage") != "publish":
        raise fail("output folder exists and was not made by `focus-data publish`", str(out_dir),
                   "choose another -o or remove that folder")
    return rep


def why_stale(previous: dict, fingerprint: str, out_dir: Path) -> str | None:
    """Why an earlier folder must be rebuilt, or None when it is up to date: built from the same inputs
    and options, and still holding every file its report lists with the recorded size."""
    if previous.get("fingerprint") != fingerprint:
        return "the inputs or options changed"
    return why_not_intact(out_dir, previous.get("files"))


def build(plan: PublishPlan, report: Report, fingerprint: str) -> None:
    """Read and check all inputs, then write shards, card and report into DIR.incomplete and rename."""
    anns = index_annotations(plan.annotations)
    report.count("annotations", len(anns))
    by_name: dict[str, list[Path]] = {}
    for n, p in plan.descriptions:
        by_name.setdefault(n, []).append(p)
    configs = [load_shards(n, paths, anns, plan, report) for n, paths in by_name.items()]
    if plan.with_images:
        check_media(configs, plan)
    feats = features(plan.with_images, plan.heatmaps_dir is not None)
    tmp = plan.incomplete   # the caller holds the folder's lock and removed a stale one
    try:
        tmp.mkdir(parents=True)
        summaries = [write_config(cfg, feats, tmp, plan, report) for cfg in configs]
        card = render_card(summaries, feats, plan.splits, plan.with_images, plan.heatmaps_dir is not None,
                           plan.repo_id, plan.prompts_dir, plan.default_config)
        card.save(tmp / "README.md")
        report.extra.update(up_to_date=False, fingerprint=fingerprint,
                            configs={s.name: {sp: asdict(f) for sp, f in s.splits.items()} for s in summaries},
                            files=list_files(tmp))
        report.save(tmp / "report.json")
        swap_into_place(tmp, plan.out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_shards(name: str, paths: list[Path], anns: dict, plan: PublishPlan, report: Report) -> ConfigInput:
    """One config from its file, or from its shard files read together: they must account for every
    image once (kept, or rejected in the filter's KEPT.rejected.jsonl beside them) unless
    --allow-incomplete-shards; a key in two shards is published once."""
    if len(paths) == 1:
        return load_config(name, paths[0], anns, plan.splits, report)
    from focusclip.pipeline.filter.stage import rejected_path_for

    covered = []
    for p in paths:
        rejected = rejected_path_for(p)
        rows = read_jsonl(p) + (read_jsonl(rejected) if rejected.is_file() else [])
        covered.append({r["image"] for r in rows if isinstance(r, dict) and isinstance(r.get("image"), str)})
    report.extra.setdefault("shards", {})[name] = check_shards(paths, covered, anns, plan.allow_incomplete_shards,
                                                               f"--descriptions {name}")
    cfgs = [load_config(name, p, anns, plan.splits, report) for p in paths]
    order = {image: i for i, image in enumerate(anns)}   # the annotations' order, as one describe run writes
    pairs = {}
    for split in plan.splits:
        keyed = {(a.image, d.get("describer"), d.get("prompt_sha")): (a, d) for c in cfgs for a, d in c.pairs[split]}
        pairs[split] = sorted(keyed.values(), key=lambda ad: order[ad[0].image])
    return ConfigInput(name, paths[0], pairs, tuple(paths))


def check_media(configs: list[ConfigInput], plan: PublishPlan) -> None:
    """Every row's image (and heatmap) must exist before writing starts."""
    missing: list[str] = []
    for cfg in configs:
        for pairs in cfg.pairs.values():
            for ann, _ in pairs:
                needed = [plan.images_dir / ann.image]
                if plan.heatmaps_dir is not None:
                    needed.append(plan.heatmaps_dir / f"{Path(ann.image).stem}.png")
                missing += [str(p) for p in needed if not p.is_file()]
    if missing:
        raise fail(f"{len(missing)} image or heatmap files are missing, e.g. {missing[0]}", "--with-images",
                   "pass the folders holding every described image (--images) and heatmap (--heatmaps)")


def _rows(cfg: ConfigInput, split: str, plan: PublishPlan, summary: ConfigSummary) -> Iterator[dict]:
    """The split's rows, image bytes read one row at a time (never all in memory)."""
    for ann, desc in cfg.pairs[split]:
        row = to_row(ann, desc, cfg.name)
        summary.add(row)
        if plan.with_images:
            row["image_data"] = {"bytes": (plan.images_dir / ann.image).read_bytes(), "path": ann.image}
            if plan.heatmaps_dir is not None:
                name = f"{Path(ann.image).stem}.png"
                row["heatmap"] = {"bytes": (plan.heatmaps_dir / name).read_bytes(), "path": name}
        yield row


def write_config(cfg: ConfigInput, feats, root: Path, plan: PublishPlan, report: Report) -> ConfigSummary:
    summary = ConfigSummary(cfg.name, cfg.path.name if not cfg.shards else
                            f"{len(cfg.shards)} shard files: " + ", ".join(p.name for p in cfg.shards), {})
    summary.filter_report, summary.filter_note = load_filter_report(cfg.path) if not cfg.shards else \
        (None, "the shards were filtered apart, each with its own report")
    for split in plan.splits:
        rows = progress(_rows(cfg, split, plan, summary), total=cfg.rows(split), desc=f"{cfg.name}/{split}",
                        unit="row", disable=None)
        files = write_split(rows, feats, root, cfg.name, split, plan.max_shard_size)
        summary.splits[split] = files
        report.count(f"{cfg.name}/{split}", files.num_examples)
        report.count("rows", files.num_examples)
        report.count("shards", len(files.files))
    return summary


def load_filter_report(descriptions: Path) -> tuple[dict | None, str]:
    """`X.report.json` beside `X.jsonl`, or None and why (a missing report is fine: unfiltered input)."""
    path = report_path_for(descriptions)
    if not path.is_file():
        return None, f"no {path.name} beside {descriptions.name}"
    try:
        rep = read_json(path)
    except FocusError:
        return None, f"{path.name} is not valid JSON"
    return (rep, "") if isinstance(rep, dict) else (None, f"{path.name} is not a JSON object")


def swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished folder over out_dir; an old folder is removed only after the swap."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def commit_text(configs: dict, plan: PublishPlan) -> tuple[str, str]:
    """Commit title and description summarising the run (counts only: no local paths, no secrets)."""
    total = sum(f["num_examples"] for c in configs.values() for f in c.values())
    title = f"Publish {PRETTY_NAME}: {len(configs)} config(s), {total} rows"
    lines = [f"- `{name}`: " + ", ".join(f"{s} {f['num_examples']}" for s, f in c.items())
             for name, c in configs.items()]
    lines.append("Images and heatmaps embedded." if plan.with_images else "Images not included.")
    lines.append("Built with focusclip `focus-data publish`.")
    return title, "\n".join(lines)

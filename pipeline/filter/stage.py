"""`filter` stage: keep only descriptions that are sound and agree with the keypoints.

One loop runs the checks of `checks.py` over the latest description of every key,
writes the kept records (with the checks they passed), the rejected ones (with the reason) and a
report with counts per reason and the quality metrics of the kept set. With `regenerate`, images
whose description was rejected go back to `describe` for a bounded number of rounds.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Sequence

from focusclip.core.errors import FocusError, fail
from focusclip.core.io import write_jsonl
from focusclip.core.lock import output_lock
from focusclip.core.report import Report, report_path_for
from focusclip.core.preflight import writable_file
from focusclip.data.records import Annotation, read_annotations
from focusclip.core.progress import progress
from focusclip.pipeline.describe.shards import check_shards, expand_paths
from focusclip.pipeline.filter.checks import CHECKS, CheckContext, FilterConfig, same_text_groups
from focusclip.pipeline.filter.records import check_describe_options, read_latest_descriptions, regenerate_round, safe_options
from focusclip.pipeline.filter.text_metrics import corpus_metrics

__all__ = ["CHECKS", "FilterConfig", "run_filter", "select_checks", "filter_records", "rejected_path_for"]

NOT_ANNOTATED = "image not in the annotations"


def select_checks(checks: list[str] | tuple[str, ...] | None = None,
                  skip_checks: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Check names to run, in CHECKS order: `checks` (all when None) minus `skip_checks`."""
    for name in [*(checks or ()), *skip_checks]:
        if name not in CHECKS:
            raise fail(f"unknown check '{name}'", "--check/--skip-check",
                       f"choose from {', '.join(CHECKS)}")
    chosen = set(checks) if checks else set(CHECKS)
    names = [n for n in CHECKS if n in chosen and n not in set(skip_checks)]
    if not names:
        raise fail("no check is left to run", "--check/--skip-check", "skip fewer checks")
    return names


def rejected_path_for(output: str | os.PathLike) -> Path:
    """`KEPT.rejected.jsonl` beside `KEPT.jsonl`."""
    return Path(output).with_suffix(".rejected.jsonl")


def judge(record: dict, ctx: CheckContext, names: list[str]) -> tuple[str | None, str | None]:
    """(check name, reason) of the first check that rejects the record, or (None, None)."""
    for name in names:
        why = CHECKS[name](record, ctx)
        if why:
            return name, why
    return None, None


def filter_records(records: list[dict], annotations: dict[str, Annotation], config: FilterConfig,
                   names: list[str], report: Report, round_: int = 0) -> tuple[list[dict], list[dict]]:
    """Run the checks over `records`; returns (kept, rejected) and counts into `report`.

    A record whose image is not annotated is skipped (counted), not rejected: there is nothing to
    check it against.
    """
    kept, rejected, contexts = [], [], {}
    echoes = same_text_groups(records, annotations) if "ignores_image" in names else {}
    for rec in progress(records, desc=f"filter{f' round {round_}' if round_ else ''}", unit="desc",
                    disable=None):
        ann = annotations.get(rec["image"])
        if ann is None:
            report.skip(NOT_ANNOTATED, rec["image"])
            continue
        ctx = contexts.setdefault(rec["image"], CheckContext(ann, config, echoes=echoes))
        name, why = judge(rec, ctx, names)
        if name is None:
            kept.append({**rec, "checks": list(names)})
        else:
            rejected.append({**rec, "reason": name, "reason_detail": why, "filter_round": round_})
            report.count(f"rejections.{name}")   # every round; the final state is rejected_by_reason
            ex = report.extra.setdefault("rejected_examples", {}).setdefault(name, [])
            if len(ex) < 5:
                ex.append(f"{rec['image']}: {why}")
    return kept, rejected


def _key(rec: dict) -> tuple:
    return (rec.get("image"), rec.get("describer"), rec.get("prompt_sha"))


def _record(verdict: dict[tuple, dict], history: list[dict], kept: list[dict], rejected: list[dict]) -> None:
    """Enter a batch of judged records. A new record of an image and describer supersedes that
    image's rejected records of the describer, even under another prompt_sha (changed options)."""
    fresh = {(r["image"], r.get("describer")) for r in kept + rejected}
    for key in [k for k, r in verdict.items() if "reason" in r and (k[0], k[1]) in fresh]:
        del verdict[key]
    for rec in kept + rejected:
        verdict[_key(rec)] = rec
    history += rejected


def _rejected_images(verdict: dict[tuple, dict]) -> dict[tuple[str, str, str], set[str]]:
    """Images still without a kept description, by (describer, backend, prompt_id) of the rejected record,
    leaving out images with a kept record of the same describer."""
    good = {(r["image"], r.get("describer")) for r in verdict.values() if "reason" not in r}
    out: dict[tuple[str, str, str], set[str]] = {}
    for r in verdict.values():
        if "reason" in r and (r["image"], r.get("describer")) not in good:
            group = (r.get("describer"), r.get("backend") or "template", r.get("prompt_id") or "pose-v1")
            out.setdefault(group, set()).add(r["image"])
    return out


def _check_paths(descriptions: Path, annotations: Path, output: Path) -> None:
    if output.suffix != ".jsonl":
        raise fail(f"output '{output}' does not end in .jsonl", "-o", "name it like NAME.kept.jsonl")
    if output.resolve() == descriptions.resolve():
        raise fail("the output would overwrite the descriptions", str(output),
                   "write the kept records to another file, e.g. NAME.kept.jsonl")
    for p, what in ((descriptions, "descriptions"), (annotations, "annotations")):
        if not p.is_file():
            raise fail(f"{what} file not found", str(p), "check the path")
    for p in (output, rejected_path_for(output), report_path_for(output)):
        writable_file(p)


def run_filter(descriptions: str | os.PathLike | Sequence[str | os.PathLike], annotations: str | os.PathLike,
               output: str | os.PathLike, config: FilterConfig = FilterConfig(),
               checks: list[str] | tuple[str, ...] | None = None, skip_checks: list[str] | tuple[str, ...] = (),
               regenerate: int = 0, describe_options: dict | None = None,
               allow_incomplete_shards: bool = False) -> Report:
    """Filter `descriptions` (JSONL, last record per key wins) against `annotations`; write the kept
    records to `output`, the rejected ones to `<output stem>.rejected.jsonl` and the report to
    `<output stem>.report.json`. `regenerate` rounds send rejected images back to describe with
    `describe_options` (`DescribeOptions.from_flat` names: backend, model, seed, …; the rest default to
    the rejected records' own describer, backend and prompt, and to describe's defaults). After the
    checks of its options the run holds `<output>.lock` (and, with `regenerate`, the descriptions'
    lock): a second process on either is refused at once. Several files or glob patterns are the shards
    of one describe run (`--shard I/N`), read together: they must describe every image once
    (`describe.shards.check_shards`) unless `allow_incomplete_shards`."""
    one = isinstance(descriptions, (str, os.PathLike))
    files = expand_paths([descriptions] if one else list(descriptions), "descriptions")
    annotations, output = Path(annotations), Path(output)
    for f in files:
        _check_paths(f, annotations, output)
    descriptions = files[0]
    if len(files) > 1 and regenerate:
        raise fail(f"--regenerate appends to one descriptions file, not to {len(files)} shards", "--regenerate",
                   "filter with --regenerate on each shard's file, or without it on the shards together")
    if regenerate < 0:
        raise fail(f"--regenerate {regenerate} is negative", "--regenerate", "give 0 or more rounds")
    names = select_checks(checks, skip_checks)
    if regenerate:
        check_describe_options(describe_options or {})
    # One writer per output: the kept file (and the rejected file and report beside it) and, when
    # regeneration rounds append to it, the descriptions file, held from here to the report.
    appended = output_lock(descriptions, "describe -o") if regenerate else contextlib.nullcontext()
    with output_lock(output, "-o"), appended:
        return _run(files, annotations, output, config, names, regenerate, describe_options or {},
                    allow_incomplete_shards)


def _run(files: list[Path], annotations: Path, output: Path, config: FilterConfig, names: list[str],
         regenerate: int, describe_options: dict, allow_incomplete_shards: bool) -> Report:
    """`run_filter` once its options are checked and its outputs locked."""
    descriptions = files[0]
    report = Report("filter", {
        "descriptions": str(descriptions) if len(files) == 1 else [str(f) for f in files],
        "annotations": str(annotations), "output": str(output),
        "checks": names, "config": dataclasses.asdict(config), "regenerate": regenerate,
        "describe_options": safe_options(describe_options)})
    anns = {a.image: a for a in read_annotations(annotations)}
    if not anns:
        raise fail("holds no annotation records", str(annotations), "pass the annotations.jsonl of `convert`")
    if len(files) == 1:
        latest = read_latest_descriptions(descriptions, report)
    else:   # shards: the last record per key of each; together they must describe every image once
        per_file = [read_latest_descriptions(f, report) for f in files]
        report.extra["shards"] = check_shards(files, [{k[0] for k in d} for d in per_file], anns,
                                              allow_incomplete_shards, "descriptions")
        latest = {k: v for d in per_file for k, v in d.items()}
    if not latest:
        skipped = "".join(f", {n} {why}" for why, n in report.skipped.items())
        raise fail(f"holds no description records{skipped}", str(descriptions), "run `focus-data describe` first")
    if not any(r["image"] in anns for r in latest.values()):
        raise fail(f"none of the {len(latest)} descriptions is of an image in {annotations}",
                   str(descriptions), "pass the annotations.jsonl the descriptions were made from")
    verdict: dict[tuple, dict] = {}   # key → latest record, kept (with "checks") or rejected
    history: list[dict] = []          # every rejected record, superseded ones included
    kept, rejected = filter_records(list(latest.values()), anns, config, names, report)
    _record(verdict, history, kept, rejected)
    report.extra["rounds"] = []
    try:
        _regenerate(regenerate, descriptions, anns, latest, verdict, history, config, names,
                    describe_options, report)
    except FocusError as e:   # a failed round (a 401, a dead server) keeps what was judged so far
        report.extra["regenerate_error"] = str(e)
        _write_outputs(output, verdict, history, report)
        raise
    _write_outputs(output, verdict, history, report)
    return report


def _regenerate(rounds: int, descriptions: Path, anns: dict[str, Annotation], latest: dict,
                verdict: dict[tuple, dict], history: list[dict], config: FilterConfig, names: list[str],
                options: dict, report: Report) -> None:
    """Up to `rounds` rounds: images still rejected go back to describe, the new records are judged."""
    for round_ in range(1, rounds + 1):
        redo = _rejected_images(verdict)
        if not redo:
            break
        new = regenerate_round(descriptions, anns, latest, redo, round_, options, report)
        kept, rejected = filter_records(new, anns, config, names, report, round_)
        _record(verdict, history, kept, rejected)
        report.extra["rounds"].append({
            "round": round_, "images_sent": sum(len(v) for v in redo.values()),
            "new_descriptions": len(new), "kept": len(kept), "rejected": len(rejected)})


def _write_outputs(output: Path, verdict: dict[tuple, dict], history: list[dict], report: Report) -> None:
    kept = [r for r in verdict.values() if "reason" not in r]
    final_rejected = [r for r in verdict.values() if "reason" in r]
    write_jsonl(output, kept)
    write_jsonl(rejected_path_for(output), history)
    by_reason: dict[str, int] = {}
    for r in final_rejected:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
    report.counts.update({"descriptions": len(verdict), "kept": len(kept), "rejected": len(final_rejected)})
    report.extra["rejected_by_reason"] = dict(sorted(by_reason.items(), key=lambda kv: -kv[1]))
    report.extra["kept_fraction"] = round(len(kept) / len(verdict), 4) if verdict else None
    report.extra["metrics"] = corpus_metrics([r["description"] for r in kept])
    report.extra["outputs"] = {"kept": str(output), "rejected": str(rejected_path_for(output))}
    report.save(report_path_for(output))

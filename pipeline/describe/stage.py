"""`describe`: one pose description per image, from the template describer or any LLM backend.

Output is append-only JSONL of Description records (docs/design.md §3.2), one line written and flushed as
each answer arrives; a torn last line from a crash is cut on the next run. The key is
(image, describer, prompt_sha): a rerun sends nothing for a key the file already has, except for
`redo_images` (the filter's regeneration rounds), whose new records are appended — readers take the
last record per key (`latest_descriptions`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from focusclip.core.errors import fail
from focusclip.core.io import JsonlAppender, read_jsonl
from focusclip.core.lock import output_lock
from focusclip.core.report import Report, report_path_for
from focusclip.core.preflight import writable_file
from focusclip.data.records import SPLITS, Annotation, Description, read_annotations
from focusclip.core.sharding import parse_shard, take_shard
from focusclip.core.progress import progress as progress_bar
from focusclip.pipeline.describe.backends import DEFAULT_CONCURRENCY, make_backend
from focusclip.pipeline.describe.shards import why_not_describable
from focusclip.pipeline.describe.structured import parse_answer, structured_prompt
from focusclip.pipeline.describe.types import Answer, Backend, GenParams, Job, Refusal, job_seed, split_reasoning
from focusclip.prompts import DEFAULT_PROMPT, build_prompt
from focusclip.prompts.picture import DEFAULT_MARK, DEFAULT_MAX_SIDE, PictureSpec

Key = tuple[str, str, str]


def describer_name(backend: str, model: str | None) -> str:
    """Default describer: the backend name for `template`, else the model name; for a path or a hub
    id ('Qwen/Qwen2.5-7B-Instruct') its last part, so the name can be a file name."""
    if backend == "template" or not model:
        return backend
    return model.rstrip("/").split("/")[-1]


def latest_descriptions(path: str | os.PathLike) -> dict[Key, Description]:
    """The last record per (image, describer, prompt_sha) key; {} when the file does not exist."""
    if not Path(path).exists():
        return {}
    out: dict[Key, Description] = {}
    for i, row in enumerate(read_jsonl(path), 1):
        try:
            d = Description.from_dict(row)
        except TypeError:
            missing = [k for k in ("image", "describer", "backend", "description", "prompt_id", "prompt_sha")
                       if k not in row]
            raise fail(f"record {i} lacks {', '.join(missing)}", str(path),
                       "pass a descriptions file written by `focus-data describe`") from None
        out[d.key] = d
    return out


def select_annotations(annotations: Sequence[Annotation], split: str | None, shard: str | None,
                       limit: int | None) -> list[Annotation]:
    """Split filter, then this shard's share (round-robin), then the first `limit`."""
    if split is not None and split not in SPLITS:
        raise fail(f"--split '{split}' is not one of {', '.join(SPLITS)}", "--split", "e.g. --split train")
    if limit is not None and limit < 0:
        raise fail(f"--limit {limit} is negative", "--limit", "pass 0 or more")
    chosen = [a for a in annotations if split is None or a.split == split]
    chosen = take_shard(chosen, parse_shard(shard))
    return chosen if limit is None else chosen[:limit]


REFUSED = "refused by the model (longer than its context, or invalid)"   # the report's skip reason


class _Writer:
    """Turns answers into records, appends them, and keeps the report and the progress bar. A record's
    `params` are the settings that produced its text: the image's seed, the run's seed, the round, the
    answer's token limit and the effective sampling settings the backend reports."""

    def __init__(self, out: JsonlAppender, report: Report, bar, describer: str, backend: str, gen: GenParams,
                 round_: int):   # `bar` may be set later, before the first answer
        self.out, self.report, self.bar = out, report, bar
        self.describer, self.backend, self.gen, self.round = describer, backend, gen, round_
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self.failures: list[dict] = []

    def __call__(self, job: Job, answer: Answer | None, error: str | None) -> None:
        self.bar.update(1)
        text, reasoning = split_reasoning(answer.text) if answer is not None else ("", None)
        if answer is not None and not text:
            answer, error = None, f"the model wrote only its reasoning ({answer.finish_reason}); raise --max-tokens"
        structured = None
        if answer is not None and self.gen.structured:
            parsed = parse_answer(text)
            if isinstance(parsed, str):
                answer, error = None, parsed
            else:
                text, structured = parsed
        if answer is None:
            self._failed(job, error)
            return
        params = {"max_tokens": answer.max_tokens or self.gen.max_tokens, **answer.sampling,
                  "seed": job.seed, "run_seed": self.gen.seed}
        if "max_completion_tokens" in params:   # OpenAI's reasoning models take this limit instead
            del params["max_tokens"]
        if self.round:
            params["round"] = self.round
        rec = Description(image=job.image, describer=self.describer, backend=self.backend,
                          description=text, prompt_id=job.prompt.prompt_id, prompt_sha=job.prompt.sha,
                          params=params, finish_reason=answer.finish_reason, usage=dict(answer.usage),
                          created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")).to_dict()
        if structured is not None:
            rec["structured"] = structured
        reasoning = answer.reasoning or reasoning
        if self.gen.keep_reasoning and reasoning:
            rec["reasoning"] = reasoning
        self.out.write(rec)
        self.report.count("described")
        self.report.count(f"finish_{answer.finish_reason or 'none'}")
        for k in self.usage:
            self.usage[k] += int(answer.usage.get(k, 0))
        if "image_tokens" in answer.usage:   # transformers counts the picture's tokens apart
            self.usage["image_tokens"] = self.usage.get("image_tokens", 0) + int(answer.usage["image_tokens"])

    def _failed(self, job: Job, error: str | None) -> None:
        refused = isinstance(error, Refusal)
        self.report.count("refused" if refused else "failed")
        self.report.skip(REFUSED if refused else "failed", job.image)
        if len(self.failures) < 100:
            self.failures.append({"image": job.image, "error": str(error or "unknown"), "refused": refused})


def _jobs(annotations: Iterable[Annotation], describer: str, done: set[Key], report: Report, opts: DescribeOptions,
          redo: set[str]) -> list[Job]:
    """The images still to ask for: describable, and with no record for their key (or to redo)."""
    jobs, spec = [], picture_spec(opts)
    for a in annotations:
        why = why_not_describable(a)
        if why:
            report.skip(why, a.image)
            continue
        prompt = build_prompt(a, opts.prompt_id, opts.with_coords, spec, opts.prompt_file)
        if opts.gen.structured:
            prompt = structured_prompt(prompt)
        if (a.image, describer, prompt.sha) in done and a.image not in redo:
            report.count("already_described")
            continue
        if prompt.picture is not None and not prompt.picture.path.is_file():
            report.skip("image file not found", a.image)
            continue
        jobs.append(Job(a, prompt, job_seed(opts.gen.seed, a.image, opts.round)))
    return jobs


@dataclass(frozen=True)
class DescribeOptions:
    """One describe run, as `focus-data describe` takes it. `annotations` None: the records are passed to
    `run_describe` in memory (the filter's regeneration rounds). `gen.concurrency` None takes the
    backend's default (`DEFAULT_CONCURRENCY`)."""
    annotations: Path | None
    output: Path
    backend: str = "template"
    model: str | None = None            # model name (openai), hub id or folder (vllm, transformers)
    revision: str | None = None         # vllm, transformers: the hub branch, tag or commit of `model`
    base_url: str | None = None         # openai: the endpoint
    split: str | None = None
    limit: int | None = None
    shard: str | None = None            # "I/N"
    prompt_id: str = DEFAULT_PROMPT
    describer: str | None = None        # None: describer_name(backend, model)
    with_coords: bool = False           # also give the LLM raw keypoint coordinates
    force: bool = False                 # ask again for every selected image
    redo_images: frozenset[str] = frozenset()   # ask again for these (a filter regeneration round)
    round: int = 0                      # the filter's regeneration round (0: none)
    prompt_file: Path | None = None     # a user's own prompt (prompts/fill.py load_prompt_file); its stem is the id
    images: Path | None = None          # the photos, for a prompt that shows them (pose-vlm-v1)
    image_max_side: int = DEFAULT_MAX_SIDE
    mark: str = DEFAULT_MARK            # none, box, number, skeleton (prompts/picture.py)
    image_url: str = "data"             # data (a JPEG data URL) or file (a file:// URL of the marked copy)
    gen: GenParams = GenParams()

    @classmethod
    def from_flat(cls, **options) -> DescribeOptions:
        """Options named as on the command line: GenParams' fields (seed, temperature, …) go into `gen`."""
        gen = {k: options.pop(k) for k in list(options) if k in _GEN_FIELDS}
        return cls(**options, gen=GenParams(**gen))


_GEN_FIELDS = frozenset(f.name for f in dataclasses.fields(GenParams))
# What `DescribeOptions.from_flat` takes: the run's fields and GenParams'
OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(DescribeOptions) if f.name != "gen") | _GEN_FIELDS
# The report keeps what shapes the records; not the transport (timeouts, retries, device, vllm engine)
_REPORTED_GEN = ("concurrency", "seed", "temperature", "top_p", "max_tokens", "thinking", "keep_reasoning",
                 "structured")


def run_describe(opts: DescribeOptions, *, records: Sequence[Annotation] | None = None,
                 backend_obj: Backend | None = None, progress: bool = True, lock: bool = True) -> Report:
    """Describe each selected image once per (image, describer, prompt_sha) and append the records to
    `opts.output`; write the report at `describe_report_path(output, shard, round)`. The images come
    from `opts.annotations` or, when that is None, from `records`. `backend_obj` replaces the backend
    built from `backend`/`model` (tests, custom clients). Everything a run needs (a writable output,
    input to describe, the server) is checked before the first request; a run that describes nothing
    writes nothing. The run holds `<output>.lock` from its first write or request to its report (one
    process per file); `lock=False`: the caller holds it (the filter's regeneration rounds)."""
    assert (opts.annotations is None) != (records is None), "give either opts.annotations or records"
    opts = _resolve(opts)
    _check_gen(opts.gen)
    if Path(opts.output).suffix != ".jsonl":
        raise fail(f"output '{opts.output}' does not end in .jsonl", "-o", "name it like descriptions/NAME.jsonl")
    output = writable_file(opts.output, "-o", append=True)
    writable_file(describe_report_path(output, opts.shard, opts.round), "-o")
    engine = backend_obj or make_backend(opts.backend, opts.model, opts.base_url, opts.gen, opts.revision)
    report = Report("describe", _report_options(opts))
    where = str(opts.annotations) if records is None else "annotations"
    chosen = _choose(records if records is not None else opts.annotations, where, opts.split, opts.shard,
                     opts.limit)
    report.count("images", len(chosen))
    with output_lock(output, "-o") if lock else contextlib.nullcontext():
        with JsonlAppender(output) as out:   # opens the file at the first record
            if out.repaired:
                report.count("torn_lines_repaired")
            done = set(latest_descriptions(output))
            redo = {a.image for a in chosen} if opts.force else set(opts.redo_images)
            t0 = time.perf_counter()
            jobs = _jobs(chosen, opts.describer, done, report, opts, redo)
            report.time("prompts_s", time.perf_counter() - t0)
            report.count("asked", len(jobs))
            _check_work(chosen, jobs, report, where)
            writer = _Writer(out, report, None, opts.describer, engine.name, opts.gen, opts.round)
            if jobs:
                prepare = getattr(engine, "prepare", None)   # optional for custom backends
                if prepare is not None:
                    prepare()   # e.g. waits for the server and checks the model, before the first job
                with progress_bar(total=len(jobs), desc=f"describe ({opts.describer})", unit="img",
                                  disable=not progress) as writer.bar:
                    t0 = time.perf_counter()
                    engine.run(jobs, writer)
                    report.time("generate_s", time.perf_counter() - t0)
        _check_answers(report, writer.failures)
        report.extra.update(usage=writer.usage, failures=writer.failures)
        report.save(describe_report_path(output, opts.shard, opts.round))
    return report


def picture_spec(opts: DescribeOptions) -> PictureSpec | None:
    """How the photos are shown, when `--images` is given (a prompt without `${picture}` ignores it)."""
    if opts.images is None:
        return None
    if not Path(opts.images).is_dir():
        raise fail("image folder not found", str(opts.images), "pass --images DIR with the annotated images")
    copies = Path(opts.output).with_suffix(".marked") if opts.image_url == "file" else None
    return PictureSpec(Path(opts.images), opts.image_max_side, opts.mark, opts.image_url, copies)


def _resolve(opts: DescribeOptions) -> DescribeOptions:
    """The defaults that depend on other options filled in: the backend's concurrency (vllm: None, vLLM's
    own max_num_seqs), the describer."""
    gen = opts.gen
    if gen.concurrency is None:
        gen = dataclasses.replace(gen, concurrency=DEFAULT_CONCURRENCY.get(opts.backend, 8))
    if opts.prompt_file is not None:   # the records' prompt_id: the file's name
        opts = dataclasses.replace(opts, prompt_id=Path(opts.prompt_file).stem)
    return dataclasses.replace(opts, gen=gen, describer=opts.describer or describer_name(opts.backend, opts.model))


def _check_gen(gen: GenParams) -> None:
    if (gen.concurrency is not None and gen.concurrency < 1) or gen.max_tokens < 1:
        raise fail("--concurrency and --max-tokens must be at least 1", "options", "e.g. --concurrency 8")
    if gen.temperature is not None and gen.temperature < 0:
        raise fail(f"--temperature {gen.temperature} is negative", "--temperature", "pass 0 (greedy) or more")
    if gen.top_p is not None and not 0 < gen.top_p <= 1:
        raise fail(f"--top-p {gen.top_p} is not in (0, 1]", "--top-p", "e.g. --top-p 0.9 (1: no cut)")


def _report_options(opts: DescribeOptions) -> dict:
    """The report's `options`: the run's fields and the sampling part of `gen`, as JSON values."""
    fields = dataclasses.asdict(opts)
    gen = fields.pop("gen")
    return {**fields, **{k: gen[k] for k in _REPORTED_GEN},
            "annotations": "<list>" if opts.annotations is None else str(opts.annotations),
            "output": str(opts.output), "redo_images": len(opts.redo_images),
            "prompt_file": None if opts.prompt_file is None else str(opts.prompt_file),
            "images": None if opts.images is None else str(opts.images)}


def _choose(annotations: str | os.PathLike | Sequence[Annotation], where: str, split: str | None,
            shard: str | None, limit: int | None) -> list[Annotation]:
    """The selected annotations; no input at all (an empty file, a split it does not have) is a user
    error. An empty shard (more shards than images) is not: the other shards have the work."""
    records = read_annotations(annotations) if isinstance(annotations, (str, os.PathLike)) else list(annotations)
    if not records:
        raise fail("holds no annotation records", where, "run `focus-data convert` first")
    if split is not None and split in SPLITS and not any(a.split == split for a in records):
        have = sorted({a.split for a in records})
        raise fail(f"has no '{split}' images (it has: {', '.join(have)})", where, "pick another --split")
    return select_annotations(records, split, shard, limit)


def _check_work(chosen: list[Annotation], jobs: list[Job], report: Report, where: str) -> None:
    """Selected images of which none can be described, and none is already done, is no input."""
    if chosen and not jobs and not report.counts.get("already_described"):
        reasons = ", ".join(f"{n} {why}" for why, n in report.skipped.items())
        raise fail(f"none of the {len(chosen)} selected images can be described ({reasons})", where,
                   "describe needs people with labelled joints; check the annotations and --split")


def _check_answers(report: Report, failures: list[dict]) -> None:
    """Every request failed or was refused: a user error naming the first failure (the file got nothing)."""
    failed = report.counts.get("failed", 0) + report.counts.get("refused", 0)
    if failed and not report.counts.get("described", 0):
        first = (failures or [{}])[0].get("error", "unknown")
        raise fail(f"no image could be described: {failed} failed, the first with: {first}", "describe",
                   "check --base-url, --model and the server, then rerun the same command")


def describe_report_path(output: str | os.PathLike, shard: str | None = None, round: int = 0) -> Path:
    """`NAME.report.json`; a shard's `NAME.shard-I-of-N.report.json` and a regeneration round's
    `NAME.round-R.report.json` sit beside it so they do not overwrite the main run's report."""
    path = report_path_for(output)
    i, n = parse_shard(shard)
    tags = ([f"shard-{i}-of-{n}"] if n > 1 else []) + ([f"round-{round}"] if round else [])
    if tags:
        path = path.with_name(path.name.replace(".report.json", "." + ".".join(tags) + ".report.json"))
    return path

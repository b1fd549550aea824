"""`run_train(cfg) -> Report`: the FocusCLIP / CLIP training loop, one process or many (torchrun).

Run directory (`output_dir`): config.yaml (resolved), metrics.jsonl, loss.png, similarity.png,
report.json and checkpoints/<step>/ + checkpoints/last/ (docs/design.md §3.5).
"""
from __future__ import annotations

import contextlib
import gc
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch

from focusclip.core.devices import cpu_threads
from focusclip.core.errors import FocusError, fail, reading, user_message
from focusclip.core.hub import Source
from focusclip.core.io import read_jsonl, write_jsonl
from focusclip.core.lock import output_lock
from focusclip.core.report import Report
from focusclip.core.progress import progress
from focusclip.training import checkpoint as ck
from focusclip.training.config import FocusConfig, check_config, to_dict, to_yaml
from focusclip.training.data import (Collate, EpochBatchSampler, FocusDataset, RunBatchSampler, SampleSpec,
                                     count_skips, make_loader, select_items, training_texts)
from focusclip.training.dist import Dist, barrier, broadcast_object, gather_objects, init_dist, shutdown
from focusclip.training.factory import Pretrained, build_tokenizer, init_config, load_pretrained, resolve_sources
from focusclip.training.finetune import apply_locks
from focusclip.training.long_text import fit_long_texts
from focusclip.training.loggers import MetricLog
from focusclip.training.loss import PAIRS, FocusLoss
from focusclip.training.optim import build_optimizer, build_scheduler, rng_state, seed_all, seed_step, set_rng_state
from focusclip.training.plan import plan_steps
from focusclip.training.plots import plot_losses, plot_similarity
from focusclip.training.prepare import prepare_set
from focusclip.training.prepared import open_prepared
from focusclip.training.resume import DAMAGED, initial_model, provenance, read_resume, resumed_provenance
from focusclip.training.stats import StepStats, Window
from focusclip.training.steps import Amp, make_amp, train_step, validate
from focusclip.training.text import load_tokenizer


@dataclass
class Run:
    """Everything the loop needs, built once by `_setup`."""
    cfg: FocusConfig
    d: Dist
    run_dir: Path
    model: torch.nn.Module          # DDP-wrapped when distributed
    raw: torch.nn.Module            # the FocusCLIP itself
    tokenizer: object
    loss_fn: FocusLoss
    opt: torch.optim.Optimizer
    sched: object
    amp: Amp
    train_set: FocusDataset
    val_set: Optional[FocusDataset]
    collate: Collate
    per_rank: int
    steps_per_epoch: int
    total_steps: int
    report: Report
    epochs: int = 0                 # epochs the run may take: train.epochs, or what train.max_steps needs
    step: int = 0
    epoch: int = 0
    micro_start: int = 0            # micro-batches of `epoch` already trained (resume)
    last_saved: Optional[int] = None
    skipped: Counter = field(default_factory=Counter)
    stats: Optional[StepStats] = None   # the step numbers on the device between metric rows
    val_loader: Optional[object] = None


def run_train(cfg: FocusConfig, resume: Optional[str] = None, force: bool = False,
              on_step: Optional[Callable[[int, dict], None]] = None,
              sources: Optional[dict[str, Source]] = None) -> Report:
    """Train per `cfg`; `resume`: "latest" or a checkpoint path; `force` clears a previous run.
    `on_step(step, row)` is called after each logged step (tests use it to interrupt a run);
    `sources` are the towers' already resolved sources (`factory.resolve_sources`), if any."""
    check_config(cfg)
    d = init_dist(cfg.train.device)
    try:
        with _output_lock(cfg, d):
            return _train(cfg, d, resume, force, on_step, sources)
    finally:
        # The DDP wrapper holds the process group; it must be gone before the group is destroyed, or
        # the gloo group dies at interpreter exit and aborts the process now and then (SIGABRT).
        gc.collect()
        shutdown(d)


@contextlib.contextmanager
def _output_lock(cfg: FocusConfig, d: Dist) -> Iterator[None]:
    """One run per output_dir: rank 0 holds `<output_dir>.lock` for the whole run (under torchrun all
    ranks are one run). A run already there stops every rank at once with one line naming it."""
    with contextlib.ExitStack() as held:
        error = None
        if d.is_main:
            try:
                held.enter_context(output_lock(cfg.output_dir, "output_dir"))
            except (FocusError, OSError) as e:   # held by another run, or a folder we may not write
                error = user_message(e)
        error = broadcast_object(d, error)
        if error is not None:
            raise FocusError(error)
        yield


def _train(cfg: FocusConfig, d: Dist, resume: Optional[str], force: bool,
           on_step: Optional[Callable[[int, dict], None]], sources: Optional[dict[str, Source]]) -> Report:
    run = _setup(cfg, d, resume, force, sources)
    _loop(run, on_step)
    return _finish(run)


# ---------------------------------------------------------------------------------------------- setup


def _refuse_clobber(cfg: FocusConfig, d: Dist, resume: Optional[str], force: bool) -> None:
    if d.is_main and ck.latest_checkpoint(Path(cfg.output_dir)) is not None and not resume and not force:
        raise fail("the run directory already holds checkpoints", cfg.output_dir,
                   "pass --resume latest to continue, --force to start over, or another output_dir")


def _prepare_dir(cfg: FocusConfig, d: Dist, resume: Optional[str], force: bool) -> Path:
    run_dir = Path(cfg.output_dir)
    if d.is_main:
        if force and not resume:
            for name in ("checkpoints", "metrics.jsonl", "tokenizer", "tensorboard", "wandb-run-id"):
                shutil.rmtree(run_dir / name, ignore_errors=True) if (run_dir / name).is_dir() \
                    else (run_dir / name).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    barrier(d)
    return run_dir


def _pretrained(cfg: FocusConfig, d: Dist, sources: Optional[dict[str, Source]]) -> Pretrained:
    """Every pretrained tower, loaded before anything is written or read. Rank 0 goes first (it
    downloads what the cache lacks), then the others read the cache; a failure on rank 0 is
    broadcast, so every rank stops with its line instead of waiting at a barrier."""
    pre, error = None, None
    if d.is_main:
        try:
            sources = sources or resolve_sources(cfg)
            for name, src in sources.items():
                print(f"{name} tower: {src.describe()}", file=sys.stderr)
            pre = load_pretrained(cfg, sources)
        except FocusError as e:
            error = str(e)
    error = broadcast_object(d, error)
    if error is not None:
        raise FocusError(error)
    return pre if d.is_main else load_pretrained(cfg, sources)


def _datasets(cfg: FocusConfig, d: Dist, report: Report, items: tuple[list, list], mean, std):
    """(train, val) datasets of the selected `items`; with `data.prepared` they read the prepared set,
    built first where shards are missing (every rank builds its share)."""
    train, val = items
    with_heatmaps = cfg.model.triple
    frames = (None, None)
    if cfg.data.prepared:
        plans = prepare_set(cfg, train + val, report, with_heatmaps, d.rank, d.world_size, lambda: barrier(d))
        root = Path(cfg.data.prepared)
        frames = (open_prepared(root, plans, train), open_prepared(root, plans, val) if val else None)
    spec = dict(image_size=cfg.train.image_size, mean=mean, std=std, with_heatmaps=with_heatmaps,
                seed=cfg.train.seed)
    return (FocusDataset(train, cfg.data, SampleSpec(train=True, **spec), frames[0]),
            FocusDataset(val, cfg.data, SampleSpec(train=False, **spec), frames[1]) if val else None)


def _tokenizer(cfg: FocusConfig, d: Dist, run_dir: Path, texts: list[str], resume_dir: Optional[Path],
               pre: Optional[Pretrained]):
    """From the checkpoint on resume; else built by rank 0, saved to RUN/tokenizer, read by all."""
    if resume_dir is not None:
        with reading(ck.tokenizer_dir(resume_dir), "the checkpoint's tokenizer", DAMAGED):
            return load_tokenizer(ck.tokenizer_dir(resume_dir))
    if d.is_main:
        tok, source = build_tokenizer(cfg, pre, texts)
        tok.save_pretrained(str(run_dir / "tokenizer"))
        pre.sources["tokenizer"] = source
        print(f"tokenizer: {source.describe()}", file=sys.stderr)
    barrier(d)
    return load_tokenizer(run_dir / "tokenizer")


def _ended(run: Run) -> Optional[str]:
    """Why a resumed run has nothing left to train, or None."""
    t = run.cfg.train
    if run.step >= run.total_steps and t.max_steps is not None:
        return (f"the run is at step {run.step}, train.max_steps is {t.max_steps}: raise train.max_steps "
                "to train on")
    if run.step >= run.total_steps or run.epoch >= run.epochs:
        return (f"the run ended by epochs: train.epochs {t.epochs} reached at step {run.step}; raise train.epochs "
                "or set train.max_steps (it overrides epochs) to train on")
    return None


def _setup(cfg: FocusConfig, d: Dist, resume: Optional[str], force: bool,
           sources: Optional[dict[str, Source]] = None) -> Run:
    _refuse_clobber(cfg, d, resume, force)
    saved = read_resume(Path(cfg.output_dir), resume) if resume else None
    resume_dir = saved.dir if saved else None
    if resume == "latest" and resume_dir is None and d.is_main:
        print(f"note: no checkpoint in {Path(cfg.output_dir) / 'checkpoints'} yet; starting from step 0",
              file=sys.stderr)
    report = Report("train")
    items = select_items(cfg, report, cfg.model.triple)   # its checks and the batch's: before any other work
    plan = plan_steps(len(items[0]), cfg.train, d.world_size, cfg.data.dataset)
    pre = _pretrained(cfg, d, sources) if saved is None else None    # before any write
    cfg = init_config(cfg, pre, saved.model if saved else None)   # model.init: its processor, text length
    run_dir = _prepare_dir(cfg, d, resume, force)
    report.options = to_dict(cfg)
    seed_all(cfg.train.seed + d.rank)
    t, v = cfg.train, cfg.model.vision
    train_set, val_set = _datasets(cfg, d, report, items, v.image_mean, v.image_std)
    tokenizer = _tokenizer(cfg, d, run_dir, [s for it in train_set.items for s in it.descriptions],
                           resume_dir, pre)
    model, init = initial_model(cfg, tokenizer, pre, saved)
    report.extra["init"] = init
    # before DDP wraps the model: it takes the parameters that require a gradient when it is built
    report.extra["frozen_parameters"] = apply_locks(model, cfg)   # model.lock_image / lock_text
    model.config.provenance = provenance(cfg, init, train_set, val_set)
    if resume_dir is not None:
        model.config.provenance = resumed_provenance(resume_dir, model.config.provenance)
    amp = make_amp(d.device, t.precision)
    report.extra["precision"] = amp.precision
    model.to(d.device)
    wrapped = model
    if d.enabled:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    opt = build_optimizer(model, cfg.optim)
    sched = build_scheduler(opt, plan.total, cfg.optim)
    loss_fn = FocusLoss(cfg.loss.kind, vars(cfg.loss.weights), d)
    report.extra["long_text"] = fit_long_texts(cfg, tokenizer, model.config.max_text_length, train_set, val_set)
    texts = training_texts(train_set.items + (val_set.items if val_set is not None else []), cfg.data.flip)
    collate = Collate(tokenizer, model.config.max_text_length, cfg.data.padding, texts)
    run = Run(cfg, d, run_dir, wrapped, model, tokenizer, loss_fn, opt, sched, amp, train_set, val_set, collate,
              plan.per_rank, plan.steps_per_epoch, plan.total, report, plan.epochs)
    keys = ("loss", *(f"loss_{k}" for k in _pairs(cfg)), "grad_norm")
    run.stats = StepStats(keys, d.device)
    if saved is not None:
        _restore(run, saved.state, ck.state_file(saved.dir))
        if d.is_main and (why := _ended(run)):
            print(f"note: nothing to train: {why}", file=sys.stderr)
    _trim_metrics(run)
    return run


def _restore(run: Run, state: dict, path: Path) -> None:
    """Continue from a resume state (`read_resume` checked its keys). What torch refuses in it (an
    optimizer of another model, damaged RNG states) is one line naming `path`."""
    with reading(path, "the resume state", DAMAGED, (TypeError,)):
        run.opt.load_state_dict(state["optimizer"])
        run.sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            run.amp.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        set_rng_state(rngs[run.d.rank] if run.d.rank < len(rngs) else rngs[0])
    run.step, run.epoch, run.micro_start = state["step"], state["epoch"], state["micro_start"]
    run.last_saved = state["step"]
    skipped = state.get("skipped") or [{}]
    run.skipped.update(skipped[run.d.rank] if run.d.rank < len(skipped) else {})
    run.stats.load_state(state.get("window"))
    if state.get("steps_per_epoch") != run.steps_per_epoch:
        print(f"warning: steps per epoch changed ({state.get('steps_per_epoch')} → {run.steps_per_epoch}); "
              "the data order after resume differs from an uninterrupted run", file=sys.stderr)


def _trim_metrics(run: Run) -> None:
    """Drop metric rows past the resumed step (a crash after the last checkpoint logged them)."""
    path = run.run_dir / "metrics.jsonl"
    if run.d.is_main and path.is_file():
        rows = read_jsonl(path)
        write_jsonl(path, [r for r in rows if r.get("step", 0) <= run.step])


# ----------------------------------------------------------------------------------------------- loop


def _loop(run: Run, on_step) -> None:
    t, d = run.cfg.train, run.d
    bar = progress(total=run.total_steps, initial=run.step, disable=not d.is_main, desc=run.cfg.model.name,
                   unit="step")
    # a resumed run drops what a killed run logged past its checkpoint (metrics.jsonl: _trim_metrics)
    log = MetricLog(run.run_dir, ("jsonl", *t.log_to), to_dict(run.cfg),
                    resume_step=run.step + 1 if run.step else None) if d.is_main else None
    # one loader, one iterator, one set of workers for the whole run (and its resume point)
    sampler = RunBatchSampler(len(run.train_set), run.per_rank, d.rank, d.world_size, t.seed, run.epochs,
                              epoch=run.epoch, start=run.micro_start)
    loader = make_loader(run.train_set, sampler, run.collate, t.num_workers, d.device.type == "cuda",
                         seed=t.seed + d.rank, prefetch=t.prefetch)
    batches = iter(loader)
    try:
        with cpu_threads(d.device, t.num_workers):
            while run.step < run.total_steps and run.epoch < run.epochs:
                _epoch(run, batches, bar, log, on_step)
    finally:
        del batches                     # shuts the workers down
        run.val_loader = None
        bar.close()
        if log:
            log.close()


def _epoch(run: Run, batches, bar, log, on_step) -> None:
    """The rest of the current epoch. No host read of a device value except at a metric row (every
    `train.log_every` steps), before validation and before a checkpoint (`training/stats.py`)."""
    t, d = run.cfg.train, run.d
    first = run.micro_start // t.grad_accum
    for k in range(first, run.steps_per_epoch):
        if run.step >= run.total_steps:
            return
        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(t.grad_accum)]
        run.report.time("data_wait_s", time.perf_counter() - t0)     # the loader fell behind (report.json)
        for b in micro:
            count_skips(run.skipped, b)
        t0 = time.perf_counter()
        seed_step(t.seed, d.rank, run.step)     # this step's dropout, from state the checkpoint holds
        res = train_step(run.model, run.raw, run.loss_fn, run.opt, run.sched, micro, d, run.amp,
                         run.cfg.optim.grad_clip)
        run.step += 1
        run.micro_start = (k + 1) * t.grad_accum
        run.stats.add(run.step, res)
        run.report.count("samples", res.samples)
        run.report.time("train_s", time.perf_counter() - t0)
        last = run.step == run.total_steps
        row = _log_row(run, log, bar) if (run.step % t.log_every == 0 or last) else None
        bar.update(1)
        if k + 1 == run.steps_per_epoch:
            run.epoch, run.micro_start = run.epoch + 1, 0
            _guard(run, run.stats.check(d))
            _validate(run, log)
        elif t.val_every and run.step % t.val_every == 0:
            _validate(run, log)
        if last or (t.checkpoint_every and run.step % t.checkpoint_every == 0):
            _guard(run, run.stats.check(d))
            _save(run)
        if on_step and row is not None:
            on_step(run.step, row)


def _pairs(cfg: FocusConfig) -> list[str]:
    """The loss pairs a run logs (FocusLoss computes those with a weight; CLIP: image–text only)."""
    views = {"image", "text"} | ({"masked"} if cfg.model.triple else set())
    return [name for name, a, b in PAIRS if a in views and b in views and getattr(cfg.loss.weights, name) != 0.0]


def _log_row(run: Run, log, bar) -> dict:
    """Read the window (one host read), stop on a non-finite step, write the row (rank 0)."""
    w = run.stats.read(run.d, run.raw.alpha, run.raw.temperatures)
    _guard(run, w)
    row = {"step": run.step, "epoch": run.epoch + 1, **w.means, "lr": run.opt.param_groups[0]["lr"],
           "alpha": w.alpha, "temperature": w.temperature, **w.pair_temperatures}
    row = {k: row[k] for k in ("step", "epoch", "loss", *(k for k in w.means if k.startswith("loss_")), "lr",
                               "grad_norm", "alpha", "temperature", *w.pair_temperatures)}   # metrics.jsonl's columns
    if log:
        log.write(row)
    bar.set_postfix(loss=f"{row['loss']:.4f}", epoch=run.epoch + 1, refresh=False)
    return row


def _guard(run: Run, w: Optional[Window]) -> None:
    """Stop before anything carries a non-finite step: it was applied to the weights in memory, but
    no row, validation or checkpoint after it is written."""
    if w is None or w.bad_step is None:
        return
    last = (f"the last good checkpoint is {run.run_dir / 'checkpoints' / ck.LAST} (step {run.last_saved})"
            if run.last_saved is not None else "no checkpoint was saved yet")
    raise fail(f"non-finite training loss at step {w.bad_step} (loss {w.bad_loss}, grad norm {w.bad_norm}); "
               f"stopped without saving; {last}", str(run.run_dir),
               "resume with a lower LR: --resume latest --set optim.lr=…")


def _validate(run: Run, log) -> None:
    """Rank 0 scores the validation split (batches of the global micro-batch size); others wait."""
    if run.d.is_main and run.val_set is not None:
        t = run.cfg.train
        if run.val_loader is None:      # built once: its persistent workers serve every epoch
            size = min(run.per_rank * run.d.world_size, len(run.val_set))
            sampler = EpochBatchSampler(len(run.val_set), size, shuffle=False)
            run.val_loader = make_loader(run.val_set, sampler, run.collate, t.num_workers,
                                         run.d.device.type == "cuda", seed=t.seed, prefetch=t.prefetch)
        t0 = time.perf_counter()
        losses, sim = validate(run.raw, run.val_loader, run.d.device, run.amp, run.cfg.loss.kind,
                               vars(run.cfg.loss.weights), t.val_batches)
        run.report.time("val_s", time.perf_counter() - t0)
        if losses is not None:
            log.write({"step": run.step, "epoch": run.epoch, **losses})
            plot_similarity(sim, run.run_dir / "similarity.png",
                            f"image–text cosine similarity, validation batch, epoch {run.epoch}")
            run.report.extra["val"] = {"epoch": run.epoch, **losses}
    barrier(run.d)


def _save(run: Run) -> None:
    rngs = gather_objects(run.d, rng_state())
    skipped = gather_objects(run.d, dict(run.skipped))
    error = None
    if run.d.is_main:
        state = {"optimizer": run.opt.state_dict(), "scheduler": run.sched.state_dict(), "step": run.step,
                 "epoch": run.epoch, "micro_start": run.micro_start, "rng": rngs,
                 "steps_per_epoch": run.steps_per_epoch, "world_size": run.d.world_size,
                 "skipped": skipped, "scaler": run.amp.scaler.state_dict(), "window": run.stats.state()}
        try:   # a full disk: every rank stops with rank 0's line instead of waiting for it
            ck.save_checkpoint(run.run_dir, run.step, run.raw, run.tokenizer, to_yaml(run.cfg), state,
                               keep=run.cfg.train.keep_checkpoints)
        except FocusError as e:
            error = str(e)
        else:
            plot_losses(read_jsonl(run.run_dir / "metrics.jsonl"), run.run_dir / "loss.png")
    error = broadcast_object(run.d, error)
    if error is not None:
        raise FocusError(error)
    run.last_saved = run.step


def _finish(run: Run) -> Report:
    r = run.report
    r.count("steps", run.step)
    total: Counter = Counter()
    for per_rank in gather_objects(run.d, dict(run.skipped)):
        total.update(per_rank)
    for name, n in sorted(total.items()):
        r.skip("unreadable image (replaced by the next one)", name, n)
    r.extra.update(run_dir=str(run.run_dir), checkpoint=str(run.run_dir / "checkpoints" / ck.LAST),
                   world_size=run.d.world_size, device=str(run.d.device))
    if run.d.is_main:
        r.save(run.run_dir / "report.json")
    return r

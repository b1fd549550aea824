"""`focus-data demo`: the whole pipeline end to end on the synthetic world, as separate processes.

    synth → convert → heatmaps → describe (template) → filter → publish → focus-train ×2 → focus-eval ×2
    → report (overlays, loss curves, results chart, table)

Every step is a console-script call (`focus-data`, `focus-train`, `focus-eval`), so the pipeline never
imports training or eval code. A step is planned just before it runs from what is on disk, is skipped
when its output exists (a rerun reuses finished work), waits when an input is missing, and is marked
"not built yet" when its command is still a stub. Adding a stage = one planner function in `PLANNERS`.
The two trainings run side by side when the machine has a core for each (`TOGETHER`), each a process
capped to its share of the cores, with its own log and a bar of its own on the terminal.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from focusclip.core.errors import fail
from focusclip.core.io import write_json
from focusclip.core.report import Report
from focusclip.core.preflight import writable_dir
from focusclip.core.progress import INTERVAL_ENV, REDRAW_ENV, progress
from focusclip.pipeline.demo.layout import MARKER, DemoOptions, Layout, Outcome, Runner, Step
from focusclip.pipeline.demo.plans import PLANNERS


# ---- running ----------------------------------------------------------------------------------------

CHILD_INTERVAL_S = "1"   # a step's bar redraw when the demo's terminal shows it (its log: a line a second)


class SubprocessRunner:
    """Runs the console scripts installed beside this Python (the project's .venv/bin), teeing stderr
    (progress bars, errors) to the terminal and everything to a log file. `threads` caps the child's
    CPU threads; `on_stderr` receives its stderr instead of the terminal (two steps at once)."""

    def __init__(self, stream_stderr: bool = True, threads: int | None = None,
                 on_stderr: Callable[[bytes], None] | None = None):
        self.stream_stderr, self.threads, self.on_stderr = stream_stderr, threads, on_stderr

    def __call__(self, script: str, args: list[str], log: Path) -> tuple[int, str]:
        exe = Path(sys.executable).parent / script
        cmd = [str(exe) if exe.exists() else (shutil.which(script) or script), *args]
        env = dict(os.environ)
        if self.stream_stderr and sys.stderr.isatty():
            # the child's bar moves in place on the terminal, not a line every 30 s (its log gets a line
            # per redraw: LogLines)
            env.update({INTERVAL_ENV: CHILD_INTERVAL_S, REDRAW_ENV: "1"})
        if self.threads is not None:
            env.update({k: str(self.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as logf:
            logf.write(f"$ {' '.join(cmd)}\n".encode())
            try:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            except FileNotFoundError:
                raise fail(f"console script {script} not found", str(exe), "run `make install` first") from None
            out: list[bytes] = []
            sink = self.on_stderr or (_to_terminal if self.stream_stderr else None)
            err = threading.Thread(target=_pump, args=(proc.stderr, LogLines(logf), sink, None))
            err.start()
            _pump(proc.stdout, logf, None, out)
            err.join()
            return proc.wait(), b"".join(out).decode("utf-8", "replace")


class LogLines:
    """A child's stderr into its log with each carriage-return redraw on a line of its own: a bar drawn
    in place for the terminal would otherwise leave one log line of thousands of characters."""

    def __init__(self, logf):
        self.logf, self.mid_line = logf, False

    def write(self, chunk: bytes) -> None:
        for piece in re.split(rb"(\r|\n)", chunk):
            if piece in (b"\r", b"\n"):
                if self.mid_line:
                    self.logf.write(b"\n")
                    self.mid_line = False
            elif piece:
                self.logf.write(piece)
                self.mid_line = True


def _to_terminal(chunk: bytes) -> None:
    sys.stderr.buffer.write(chunk)
    sys.stderr.flush()


def _pump(src, logf, sink: Callable[[bytes], None] | None, keep: list[bytes] | None) -> None:
    for chunk in iter(lambda: src.read1(4096), b""):
        logf.write(chunk)
        if keep is not None:
            keep.append(chunk)
        if sink is not None:
            sink(chunk)


def _not_built(runner: Runner, step: Step) -> bool:
    """A command that is still a stub: its --help says "not built yet" (asked before running, so a
    stub's usage error never reaches the terminal)."""
    probe = [step.args[0], "--help"] if step.script == "focus-data" else ["--help"]
    _, text = runner(step.script, probe, Path(os.devnull))    # not the step's log: it would open with --help
    return "not built yet" in text


def run_step(name: str, step: Step, runner: Runner, lay: Layout, echo: Callable[[str], None]) -> Outcome:
    if step.is_done():
        return Outcome(name, "reused", f"{step.done} exists")
    log = lay.logs / f"{name}.log"
    if _not_built(runner, step):
        return Outcome(name, "not built yet", f"`{step.script} {step.args[0]}` is still a stub")
    t0 = time.perf_counter()
    rc, out = runner(step.script, list(step.args), log)
    seconds = time.perf_counter() - t0
    for line in out.strip().splitlines()[-6:]:
        echo(f"    {line}")
    if rc == 0 and step.is_done():
        return Outcome(name, "ran", step.what, seconds)
    why = f"exit {rc}" if rc else f"exit 0 but no {step.done}"
    return Outcome(name, "failed", f"{why}; see {log}", seconds)


def prepare(opt: DemoOptions, lay: Layout) -> None:
    """--force starts from nothing, but only ever deletes a folder an earlier demo made."""
    options = {k: str(v) for k, v in opt.__dict__.items() if k not in ("force", "until")}
    writable_dir(lay.out)
    marker = lay.out / MARKER
    if opt.force and lay.out.exists():
        if not marker.is_file():
            raise fail("is not a demo folder (no demo.json), so --force will not delete it", str(lay.out),
                       "choose another -o/--output")
        shutil.rmtree(lay.out)
    if marker.is_file():   # reusing finished steps is only right for the same options
        before = json.loads(marker.read_text(encoding="utf-8")).get("options", {})
        changed = sorted(k for k in options if before.get(k, options[k]) != options[k])
        if changed:
            raise fail(f"was made with other options ({', '.join(changed)})", str(lay.out),
                       "pass --force to start over, or choose another -o/--output")
    lay.out.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"options": options})


def _one_step(name: str, plan: Step | Outcome | str | None, runner: Runner, lay: Layout,
              echo: Callable[[str], None]) -> Outcome | None:
    """A planner's answer → what happened: not applicable (None), done in-process (an Outcome),
    waiting for an input (a string), or a console-script step to run or reuse."""
    if plan is None or isinstance(plan, Outcome):
        return plan
    if isinstance(plan, str):
        return Outcome(name, "waiting", plan)
    if not plan.is_done():
        echo(f"== {name}: {plan.what}")
    return run_step(name, plan, runner, lay, echo)


# Independent CPU-bound steps that run side by side, each on its share of the cores: on 2 cores, the
# two trainings at one thread each finish sooner than one after the other at two threads each
# (OpenMP's second thread gains a small model less than a second process does; docs/demo.md).
TOGETHER = ("train-clip", "train-focusclip")
_STEPS_DONE = re.compile(rb"(\d+)/(\d+) \[[^\]]*(?:step/s|s/step)")   # the trainer's bar, not the datasets'


def run_together(plans: dict[str, Step | Outcome | str | None], lay: Layout, runner: Runner,
                 echo: Callable[[str], None]) -> dict[str, Outcome]:
    """Runs the planned steps at once when the runner can (a process each), there are cores for all,
    and every one has work to do; returns their outcomes ({} otherwise: they then run one by one)."""
    names = tuple(plans)
    threads = (os.cpu_count() or 1) // len(names)
    if not (isinstance(runner, SubprocessRunner) and threads >= 1
            and all(isinstance(p, Step) and not p.is_done() for p in plans.values())):
        return {}
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock, tqdm.external_write_mode():
            echo(line)

    for n, p in plans.items():
        say(f"== {n}: {p.what} (beside the other{'s' if len(names) > 2 else ''}, {threads} CPU thread"
            f"{'s' if threads > 1 else ''} each; log: {lay.logs / (n + '.log')})")
    bars = {n: progress(total=None, desc=n, unit="step", position=i, leave=True) for i, n in enumerate(names)}

    def one(name: str) -> Outcome:
        bar, said = bars[name], [b""]

        def on_stderr(chunk: bytes) -> None:    # the child's own bar, redrawn as one of ours
            found = _STEPS_DONE.findall(chunk)
            if found:
                done, total = (int(x) for x in found[-1])
                with lock:
                    bar.total = total
                    bar.update(done - bar.n)
            said[0] = (said[0] + chunk)[-4096:]   # the end of what it said, for a failure

        mine = copy.copy(runner)
        mine.threads, mine.on_stderr = threads, on_stderr
        outcome = run_step(name, plans[name], mine, lay, say)
        if outcome.status == "failed":           # its error line, which the terminal did not see
            lines = [ln for ln in said[0].decode("utf-8", "replace").replace("\r", "\n").splitlines()
                     if ln.strip() and not _STEPS_DONE.search(ln.encode())]
            for line in lines[-2:]:
                say(f"    {name}: {line}")
        return outcome

    try:
        with ThreadPoolExecutor(len(names)) as pool:
            outcomes = dict(zip(names, pool.map(one, names)))
    finally:
        for bar in bars.values():
            bar.close()
    return outcomes


def run_demo(opt: DemoOptions, runner: Runner | None = None, echo: Callable[[str], None] = print) -> Report:
    """Run every step in order; returns a report whose `extra["steps"]` lists each step's outcome."""
    from focusclip.pipeline.demo.report import build_report

    runner = runner or SubprocessRunner()
    if opt.until is not None and opt.until not in PLANNERS:
        raise fail(f"--until {opt.until} is not a step", "focus-data demo", f"use one of {', '.join(PLANNERS)}")
    lay = Layout(Path(opt.out))
    prepare(opt, lay)
    report = Report("demo", {k: str(v) for k, v in opt.__dict__.items()})
    outcomes: list[Outcome] = []
    together: dict[str, Outcome] = {}
    for name, planner in PLANNERS.items():
        if name == TOGETHER[0] and opt.until not in TOGETHER[:-1]:
            together = run_together({n: PLANNERS[n](opt, lay) for n in TOGETHER}, lay, runner, echo)
        outcome = together.pop(name) if name in together else _one_step(name, planner(opt, lay), runner, lay, echo)
        if outcome is None:
            continue
        echo(f"   {name}: {outcome.status}{' — ' + outcome.detail if outcome.detail else ''}"
             f"{f' ({outcome.seconds:.0f} s)' if outcome.seconds else ''}")
        outcomes.append(outcome)
        report.count(outcome.status.replace(" ", "_"))
        if name == opt.until:
            break
    report.extra["steps"] = [o.__dict__ for o in outcomes]
    report.extra["report_files"] = [str(p) for p in build_report(lay, echo)]
    report.save(lay.out / "report.json")
    return report

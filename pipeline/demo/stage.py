"""`focus-data demo`: the whole pipeline end to end on the synthetic world, as separate processes.

    synth → convert → heatmaps → describe (template) → filter → publish → focus-train ×2 → focus-eval ×2
    → report (overlays, loss curves, results chart, table)

Every step is a console-script call (`focus-data`, `focus-train`, `focus-eval`), so the pipeline never
imports training or eval code. A step is planned just before it runs from what is on disk, is skipped
when its output exists (a rerun reuses finished work), waits when an input is missing, and is marked
"not built yet" when its command is still a stub. Adding a stage = one planner function in `PLANNERS`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from focusclip.data.errors import fail
from focusclip.data.io import Report, write_json
from focusclip.data.preflight import writable_dir
from focusclip.pipeline.demo.layout import MARKER, DemoOptions, Layout, Outcome, Runner, Step
from focusclip.pipeline.demo.plans import PLANNERS


# ---- running ----------------------------------------------------------------------------------------

class SubprocessRunner:
    """Runs the console scripts installed beside this Python (the project's .venv/bin), teeing stderr
    (progress bars, errors) to the terminal and everything to a log file."""

    def __init__(self, stream_stderr: bool = True):
        self.stream_stderr = stream_stderr

    def __call__(self, script: str, args: list[str], log: Path) -> tuple[int, str]:
        exe = Path(sys.executable).parent / script
        cmd = [str(exe) if exe.exists() else (shutil.which(script) or script), *args]
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as logf:
            logf.write(f"$ {' '.join(cmd)}\n".encode())
            try:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except FileNotFoundError:
                raise fail(f"console script {script} not found", str(exe), "run `make install` first") from None
            out: list[bytes] = []
            err = threading.Thread(target=_pump, args=(proc.stderr, logf, sys.stderr if self.stream_stderr else None, None))
            err.start()
            _pump(proc.stdout, logf, None, out)
            err.join()
            return proc.wait(), b"".join(out).decode("utf-8", "replace")


def _pump(src, logf, terminal, keep: list[bytes] | None) -> None:
    for chunk in iter(lambda: src.read1(4096), b""):
        logf.write(chunk)
        if keep is not None:
            keep.append(chunk)
        if terminal is not None:
            terminal.buffer.write(chunk)
            terminal.flush()


def _not_built(runner: Runner, step: Step, log: Path) -> bool:
    """A command that is still a stub: its --help says "not built yet" (asked before running, so a
    stub's usage error never reaches the terminal)."""
    probe = [step.args[0], "--help"] if step.script == "focus-data" else ["--help"]
    _, text = runner(step.script, probe, log)
    return "not built yet" in text


def run_step(name: str, step: Step, runner: Runner, lay: Layout, echo: Callable[[str], None]) -> Outcome:
    if step.is_done():
        return Outcome(name, "reused", f"{step.done} exists")
    log = lay.logs / f"{name}.log"
    if _not_built(runner, step, log):
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
    for name, planner in PLANNERS.items():
        outcome = _one_step(name, planner(opt, lay), runner, lay, echo)
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

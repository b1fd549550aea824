"""The demo's orchestration alone, with a fake runner: order, reuse, waiting, stubs, failures, --force."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from focusclip.core.errors import FocusError
from focusclip.pipeline.demo import DemoOptions, run_demo
from focusclip.pipeline.demo.layout import Layout
from focusclip.pipeline.demo.plans import PLANNERS
from focusclip.pipeline.demo.stage import SubprocessRunner
from tests.conftest import console_script

SYNTH_ONLY_STEPS = ["synth", "convert", "merge", "heatmaps", "describe"]


class FakeRunner:
    """Pretends to be the console scripts: writes each step's `done` file, or acts as a stub."""

    def __init__(self, stubs=(), failing=()):
        self.calls: list[tuple[str, list[str]]] = []
        self.stubs, self.failing = set(stubs), set(failing)

    def __call__(self, script, args, log):
        self.calls.append((script, args))
        command = args[0] if script == "focus-data" else script
        if args[-1] == "--help":
            return 0, "(not built yet)" if command in self.stubs else "Usage: ..."
        if command in self.failing:
            return 1, ""
        for path in _outputs(script, args):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n") if path.suffix else path.mkdir(exist_ok=True)
        return 0, f"{command} did its work"


def _outputs(script, args) -> list[Path]:
    """The files a real stage would leave, from its own arguments."""
    opt = dict(zip(args, args[1:]))
    out = Path(opt.get("-o", "")) if "-o" in opt else None
    cmd = args[0] if script == "focus-data" else script
    if cmd == "synth":
        mat = out / "mpii" / "mpii_human_pose_v1_u12_1.mat"
        split = out / "eval" / "stanford40" / "ImageSplits" / "test.txt"
        return [out / "report.json", mat, out / "mpii" / "images", split]
    if cmd == "convert":
        return [out]
    if cmd == "describe" or cmd == "filter":
        return [out, out.with_suffix(".report.json")]
    if cmd in ("heatmaps",):
        return [out / "report.json"]
    if cmd == "publish":
        return [out / "README.md"]
    if cmd == "focus-train":
        run = Path(next(a.split("=", 1)[1] for a in args if a.startswith("output_dir=")))
        return [run / "checkpoints" / "last" / "model.safetensors", run / "report.json"]
    if cmd == "focus-eval":   # an entry per --task, and the drawn-classes task of --task-file
        tasks = [b for a, b in zip(args, args[1:]) if a == "--task"] + ["stanford40-drawn"] * ("--task-file" in args)
        out.write_text(json.dumps({"tasks": {t: {} for t in tasks}}))
        return []
    raise AssertionError(f"unexpected step {script} {args}")


def _convert_writes_jsonl(runner):
    """merge reads convert's output, so the fake convert must write a real (empty) JSONL."""
    original = runner.__call__

    def call(script, args, log):
        rc, out = original(script, args, log)
        if args[:2] == ["convert", "mpii"] and args[-1] != "--help":
            Path(args[args.index("-o") + 1]).write_text("")
        return rc, out
    return call


def _opt(tmp_path, **kw) -> DemoOptions:
    configs = tmp_path / "configs"
    configs.mkdir(exist_ok=True)
    for name in ("mini-clip.yaml", "mini-focusclip.yaml"):
        (configs / name).write_text("{}\n")
    return DemoOptions(out=tmp_path / "demo", configs=configs, **kw)


def test_every_step_runs_in_order_then_a_rerun_reuses_all(tmp_path):
    runner = FakeRunner()
    report = run_demo(_opt(tmp_path), runner=_convert_writes_jsonl(runner), echo=lambda s: None)
    steps = report.extra["steps"]
    assert [s["name"] for s in steps] == [n for n in PLANNERS if "real" not in n]
    assert all(s["status"] == "ran" for s in steps), steps
    trained = [a for s, a in runner.calls if s == "focus-train" and a[-1] != "--help"]
    assert [Path(a[0]).name for a in trained] == ["mini-clip.yaml", "mini-focusclip.yaml"]
    assert any(a == "data.heatmaps=" + str(Layout(tmp_path / "demo").heatmaps) for a in trained[1])
    evals = [a for s, a in runner.calls if s == "focus-eval" and a[-1] != "--help"]
    assert {a[a.index("-o") + 1] for a in evals} == {str(tmp_path / "demo" / f"results-{m}.json")
                                                      for m in ("clip", "focusclip")}
    task_file = Layout(tmp_path / "demo").drawn_task    # written by the drawn-task step, scored by each eval
    assert all(a[a.index("--task-file") + 1] == str(task_file) for a in evals) and task_file.is_file()
    n_calls = len(runner.calls)
    again = run_demo(_opt(tmp_path), runner=_convert_writes_jsonl(runner), echo=lambda s: None)
    assert {s["status"] for s in again.extra["steps"]} == {"reused"}
    assert len(runner.calls) == n_calls, "a rerun must not call any stage"


def test_a_stub_stage_is_not_built_yet_and_what_needs_it_waits(tmp_path):
    runner = FakeRunner(stubs={"describe"})
    lines: list[str] = []
    report = run_demo(_opt(tmp_path), runner=_convert_writes_jsonl(runner), echo=lines.append)
    status = {s["name"]: s["status"] for s in report.extra["steps"]}
    assert status["describe"] == "not built yet" and status["heatmaps"] == "ran"
    assert status["filter"] == "waiting" and status["train-clip"] == "waiting"
    assert any("describe: not built yet" in ln for ln in lines)
    assert not any(a[0] == "describe" and a[-1] != "--help" for s, a in runner.calls if s == "focus-data")
    assert any("Look at" in ln for ln in lines)


def test_a_failing_stage_is_reported_and_the_command_exits_1(tmp_path):
    runner = FakeRunner(failing={"heatmaps"})
    report = run_demo(_opt(tmp_path), runner=_convert_writes_jsonl(runner), echo=lambda s: None)
    status = {s["name"]: s for s in report.extra["steps"]}
    assert status["heatmaps"]["status"] == "failed" and "logs/heatmaps.log" in status["heatmaps"]["detail"]
    # training renders heatmaps on the fly when the PNGs are not there
    train = [a for s, a in runner.calls if s == "focus-train" and a[-1] != "--help"][0]
    assert "data.heatmaps=render" in train


def test_force_only_deletes_a_demo_folder(tmp_path):
    precious = tmp_path / "demo"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(FocusError, match="not a demo folder"):
        run_demo(_opt(tmp_path, force=True), runner=FakeRunner(), echo=lambda s: None)
    assert (precious / "thesis.tex").exists()


def test_subprocess_runner_logs_and_captures(tmp_path):
    log = tmp_path / "log.txt"
    rc, out = SubprocessRunner(stream_stderr=False)("focus-data", ["synth", "--help"], log)
    assert rc == 0 and "--n-train" in out
    assert "$ " in log.read_text() and "--n-train" in log.read_text()


def test_demo_command_help_and_bad_env(tmp_path):
    exe = console_script("focus-data")
    res = subprocess.run([exe, "demo", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--output" in res.stdout and "--set" in res.stdout
    env = {"PATH": "/usr/bin:/bin", "MPII_DIR": str(tmp_path / "nowhere")}
    res = subprocess.run([exe, "demo", "-o", str(tmp_path / "d")], capture_output=True, text=True, env=env)
    assert res.returncode == 1 and "MPII_DIR" in res.stderr and "Traceback" not in res.stderr


def test_a_rerun_with_other_options_is_refused_until_force(tmp_path):
    run_demo(_opt(tmp_path), runner=_convert_writes_jsonl(FakeRunner()), echo=lambda s: None)
    with pytest.raises(FocusError, match="other options \\(n_train\\)"):
        run_demo(_opt(tmp_path, n_train=7), runner=FakeRunner(), echo=lambda s: None)
    again = run_demo(_opt(tmp_path, n_train=7, force=True), runner=_convert_writes_jsonl(FakeRunner()),
                     echo=lambda s: None)
    assert {s["status"] for s in again.extra["steps"]} == {"ran"}


class ThreadCountingRunner(SubprocessRunner):
    """A subprocess runner (so the demo may run steps side by side) that fakes each call as
    FakeRunner does and records the thread cap it was given."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.fake, self.caps = _convert_writes_jsonl(FakeRunner()), {}

    def __call__(self, script, args, log):
        if args[-1] != "--help":
            self.caps[log.stem] = self.threads
        return self.fake(script, args, log)


def test_the_two_trainings_run_together_with_half_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    runner = ThreadCountingRunner(stream_stderr=False)
    report = run_demo(_opt(tmp_path), runner=runner, echo=lambda s: None)
    steps = {s["name"]: s["status"] for s in report.extra["steps"]}
    assert steps["train-clip"] == steps["train-focusclip"] == "ran"
    assert runner.caps["train-clip"] == runner.caps["train-focusclip"] == 1
    others = {k: v for k, v in runner.caps.items() if not k.startswith("train-")}
    assert {"synth", "publish", "eval-clip", "eval-focusclip"} <= set(others)
    assert set(others.values()) == {None}                 # every other step: the machine's default


def test_until_the_first_training_runs_it_alone(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    runner = ThreadCountingRunner(stream_stderr=False)
    report = run_demo(_opt(tmp_path, until="train-clip"), runner=runner, echo=lambda s: None)
    assert [s["name"] for s in report.extra["steps"]][-1] == "train-clip"
    assert runner.caps["train-clip"] is None and "train-focusclip" not in runner.caps


# ---- the quick variant ----------------------------------------------------------------------------

def test_quick_resolves_to_the_benchmark_budget_and_given_options_win():
    from focusclip.pipeline.demo.layout import QUICK, demo_options

    full, quick = demo_options(), demo_options(quick=True)
    assert (full.out, full.n_train, full.n_eval, full.steps) == (Path("runs/demo"), 12000, 280, None)
    assert (quick.out, quick.n_train, quick.n_eval, quick.steps) == (Path("runs/demo-quick"), 6000, 280, 800)
    # the budget of one benchmarks/focus_effect.py run (its --n-train and --steps defaults)
    bench = (Path(__file__).parents[3] / "benchmarks" / "focus_effect.py").read_text()
    assert '"--steps", type=int, default=800' in bench and '"--n-train", type=int, default=6000)' in bench
    given = demo_options(quick=True, out=Path("x"), n_train=50, steps=0, seed=3)
    assert (given.out, given.n_train, given.n_eval, given.steps, given.seed) == (Path("x"), 50, 280, None, 3)
    assert demo_options(quick=False, n_train=None, steps=None) == full and set(QUICK) <= set(vars(full))


def test_quick_through_the_command_line(monkeypatch):
    """`focus-data demo --quick` hands run_demo the quick options (run_demo itself is replaced: the
    run takes minutes; docs/demo.md gives its measured time)."""
    from typer.testing import CliRunner

    import focusclip.pipeline.demo as demo
    from focusclip.core.report import Report
    from focusclip.pipeline.cli import app

    seen = []

    def fake(opt, echo=print):
        seen.append(opt)
        report = Report("demo")
        report.extra["steps"] = []
        return report

    monkeypatch.setattr(demo, "run_demo", fake)
    monkeypatch.delenv("MPII_DIR", raising=False)
    monkeypatch.delenv("DATA_ROOT", raising=False)
    for args, want in ((["--quick"], (Path("runs/demo-quick"), 6000, 800)),
                       (["--quick", "--steps", "100", "-o", "q"], (Path("q"), 6000, 100)),
                       ([], (Path("runs/demo"), 12000, None))):
        done = CliRunner().invoke(app, ["demo", *args])
        assert done.exit_code == 0, done.output
        assert (seen[-1].out, seen[-1].n_train, seen[-1].steps) == want

"""The whole pipeline, in-process, on a very small synthetic world: every stage runs and its outputs
agree with the stages before it (counts, image ids). A second run reuses everything."""
from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focusclip.core.io import read_jsonl
from focusclip.pipeline.demo import DemoOptions, run_demo
from focusclip.pipeline.demo.layout import Layout, checkpoint, results_path
from focusclip.data.synthetic.evalsets import DRAWN_CLASSES
from focusclip.pipeline.demo.drawn import DRAWN_TASK
from focusclip.pipeline.filter.checks import CHECKS
from focusclip.pipeline.demo.plans import SYNTH_TASKS


class InProcessRunner:
    """Calls the console scripts' own entry points (`[project.scripts]`: `main()`, which wraps the app
    in `run_cli`) in this process, with sys.argv set as the shell would, and returns (exit status,
    stdout) as the subprocess runner does — no interpreter start-ups, and the exit codes, error lines and
    tracebacks are the real ones, not a copy of them."""

    def __init__(self):
        from focusclip.eval.cli import main as eval_main
        from focusclip.pipeline.cli import main as data_main
        from focusclip.training.cli import main as train_main

        self.mains = {"focus-data": data_main, "focus-train": train_main, "focus-eval": eval_main}
        installed = {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.name in self.mains}
        assert installed == {name: f"{fn.__module__}:main" for name, fn in self.mains.items()}, installed

    def __call__(self, script, args, log):
        out, err = io.StringIO(), io.StringIO()
        # As the installed script runs: argv[0] is its name, and __main__ is a plain script (under
        # `python -m pytest` click would otherwise name the program "python -m pytest.focus-data").
        main, argv, package = sys.modules["__main__"], sys.argv, sys.modules["__main__"].__package__
        sys.argv, main.__package__ = [script, *map(str, args)], None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    self.mains[script]()
                    rc = 0
                except SystemExit as e:     # typer's own exit, and run_cli's exit 1
                    rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.argv, main.__package__ = argv, package
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"$ {script} {' '.join(map(str, args))}\n{out.getvalue()}{err.getvalue()}")
        return rc, out.getvalue()


@pytest.mark.parametrize("args, rc", [
    (["convert", "mpii", "absent.mat", "-o", "out.jsonl"], 1),     # a user error: run_cli's one line
    (["convert", "mpii", "absent.mat"], 2),                        # a usage error: click's exit 2
    (["convert", "--help"], 0),
])
def test_in_process_runner_answers_as_the_installed_console_script(tmp_path, monkeypatch, args, rc):
    from focusclip.pipeline.demo.stage import SubprocessRunner

    monkeypatch.chdir(tmp_path)
    got = InProcessRunner()("focus-data", args, tmp_path / "in.log")
    real = SubprocessRunner(stream_stderr=False)("focus-data", args, tmp_path / "sub.log")
    assert got == real and got[0] == rc
    logs = [(tmp_path / f"{n}.log").read_text().splitlines()[1:] for n in ("in", "sub")]
    assert sorted(logs[0]) == sorted(logs[1])          # same stdout and stderr lines (order may interleave)
    if rc == 1:
        assert "error: absent.mat: file not found" in "\n".join(logs[0]) and "Traceback" not in logs[0]


# A shared group folder's umask: every file the stages write must be group-readable and -writable,
# as an ordinary write makes it (the default 022 would not tell 0644 from a tempfile's 0600 apart less
# clearly; 002 differs from both).
UMASK = 0o002


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("demo") / "run"
    opt = DemoOptions(out=out, n_train=40, n_eval=14, steps=3,
                      train_sets=("train.batch_size=8", "train.checkpoint_every=0"))
    lines: list[str] = []
    old = os.umask(UMASK)
    try:
        report = run_demo(opt, runner=InProcessRunner(), echo=lines.append)
    finally:
        os.umask(old)
    return opt, Layout(out), report, lines


@pytest.mark.slow
def test_files_written_by_every_stage_have_the_umask_permissions(demo_run):
    """Datasets, heatmaps, descriptions, checkpoints (training state and card included), results and
    reports: 0666 and 0777 less the umask, like files made with open() and mkdir()."""
    _, lay, report, _ = demo_run
    files = [p for p in lay.out.rglob("*") if p.is_file() and not p.is_symlink()]
    folders = [p for p in lay.out.rglob("*") if p.is_dir()]
    wrong = [f"{p.relative_to(lay.out)} {stat.S_IMODE(p.stat().st_mode):o}" for p in files
             if stat.S_IMODE(p.stat().st_mode) != 0o666 & ~UMASK]
    wrong += [f"{p.relative_to(lay.out)}/ {stat.S_IMODE(p.stat().st_mode):o}" for p in folders
              if stat.S_IMODE(p.stat().st_mode) != 0o777 & ~UMASK]
    assert not wrong, wrong
    stages = {s["name"] for s in report.extra["steps"]}
    assert {"convert", "heatmaps", "describe", "filter", "publish", "train-focusclip", "eval-focusclip"} <= stages
    kinds = {p.suffix for p in files}
    assert {".jsonl", ".json", ".png", ".parquet", ".safetensors", ".pt", ".md", ".yaml"} <= kinds, kinds


@pytest.mark.slow
def test_every_stage_ran(demo_run):
    _, _, report, lines = demo_run
    status = {s["name"]: s["status"] for s in report.extra["steps"]}
    assert status == {name: "ran" for name in status}, "\n".join(lines)
    assert {"synth", "convert", "merge", "heatmaps", "describe", "filter", "publish", "train-clip",
            "train-focusclip", "drawn-task", "eval-clip", "eval-focusclip"} == set(status)


@pytest.mark.slow
def test_stage_outputs_agree(demo_run):
    _, lay, _, _ = demo_run
    truth = {r["image"]: r for r in read_jsonl(lay.world_truth)}
    ann = {r["image"]: r for r in read_jsonl(lay.annotations)}
    assert ann.keys() == truth.keys() and len(ann) == 40
    for name, r in ann.items():
        assert [p["kpts"] for p in r["people"]] == [p["kpts"] for p in truth[name]["people"]]
    labelled = {n for n, r in ann.items() if any(v > 0 for p in r["people"] for v in p["kpts_vis"])}
    pngs = {p.stem for p in lay.heatmaps.glob("*.png")}
    assert {Path(n).stem for n in labelled} <= pngs
    # describe writes one description per image with a labelled joint (this world: 39 of 40; the
    # one test image is unlabelled, as MPII's are) and skips the others under their reason
    descriptions = read_jsonl(lay.descriptions)
    described = [d["image"] for d in descriptions]
    assert len(described) == len(set(described)) and set(described) == labelled and len(labelled) == 39
    assert json.loads(lay.descriptions.with_suffix(".report.json").read_text())["skipped"] == {
        "no labelled joints": len(ann) - len(labelled)}
    # The template describer states only what it read from the keypoints (docs/describe.md), and on
    # this seed the filter keeps every one of its texts unchanged: a rejection here is describe and
    # filter disagreeing about a pose, i.e. a bug to look at, not noise to allow for.
    report = json.loads(lay.kept.with_suffix(".report.json").read_text())
    checks = report["options"]["checks"]
    assert checks == list(CHECKS) and read_jsonl(lay.kept) == [{**d, "checks": checks} for d in descriptions]
    assert lay.kept.with_name(lay.kept.stem + ".rejected.jsonl").read_text() == ""
    counts = report["counts"]
    assert (counts["descriptions"], counts["kept"], counts["rejected"]) == (39, 39, 0)


@pytest.mark.slow
def test_published_dataset_holds_the_kept_descriptions(demo_run):
    from datasets import load_dataset

    _, lay, _, _ = demo_run
    kept = {d["image"]: d["description"] for d in read_jsonl(lay.kept)}
    ann = {r["image"]: r for r in read_jsonl(lay.annotations)}
    ds = load_dataset(str(lay.published), "template")
    rows = {r["image"]: r for split in ds.values() for r in split}
    assert rows.keys() == {n for n in kept if ann[n]["split"] != "test"}
    for name, row in rows.items():
        assert row["description"] == kept[name] and row["count"] == len(ann[name]["people"])


@pytest.mark.slow
def test_training_and_evaluation_outputs(demo_run):
    _, lay, _, _ = demo_run
    for model in ("clip", "focusclip"):
        assert (checkpoint(lay, model) / "model.safetensors").is_file()
        rows = read_jsonl(lay.train / model / "metrics.jsonl")
        assert any("loss" in r for r in rows)
        results = json.loads(results_path(lay, model).read_text())
        stanford = results["tasks"]["stanford40-action"]
        assert stanford["n"] == 14 and stanford["k"] == 3 and len(stanford["classes"]) == 40
        # no age task (no text teaches age); the drawn-classes task of pipeline/demo/drawn.py beside it
        assert set(results["tasks"]) == set(SYNTH_TASKS) | {DRAWN_TASK} == {"stanford40-action", DRAWN_TASK}
        assert 0 <= stanford["ci95_top1"][0] <= stanford["top1"] <= stanford["ci95_top1"][1] <= 1
        drawn = results["tasks"][DRAWN_TASK]
        assert (drawn["n"], drawn["classes"], drawn["k"]) == (14, sorted(DRAWN_CLASSES), 1)
        assert drawn["top1"] == drawn_top1(lay, model)     # the 40-way scores restricted to the drawn columns
    focus_rows = read_jsonl(lay.train / "focusclip" / "metrics.jsonl")
    assert any(r.get("alpha") is not None for r in focus_rows)


def drawn_top1(lay: Layout, model: str) -> float:
    """Top-1 among the drawn classes as benchmarks/focus_effect.py computes it: the checkpoint's cosine
    scores of the 40-way Stanford 40 task (focus-eval's reader, prompts and scorer), argmax over the
    drawn classes' columns only."""
    from focusclip.eval.model import load_model
    from focusclip.eval.run import read_task_data, task_samples
    from focusclip.eval.tasks import select_tasks
    from focusclip.eval.zeroshot import build_classifier, score_samples

    task = select_tasks(["stanford40-action"])[0]
    samples, labels, _ = task_samples(task, read_task_data(task, lay.eval_root), None)
    cpu = torch.device("cpu")
    m = load_model(checkpoint(lay, model), None, cpu)
    with torch.no_grad():
        scores, _ = score_samples(m, samples, build_classifier(m, task.prompts(False)), workers=0, device=cpu)
    drawn = np.array([task.class_names.index(c) for c in sorted(DRAWN_CLASSES)])
    best = drawn[scores[:, drawn].argmax(1)]
    return float(np.mean([b in labs for b, labs in zip(best, labels)]))


@pytest.mark.slow
def test_report_folder_and_final_table(demo_run):
    _, lay, _, lines = demo_run
    for png in ("heatmap_overlays.png", "loss_curves.png", "results.png"):
        assert (lay.report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (lay.report / "results.md").read_text()
    assert "FocusCLIP − CLIP" in table and "| chance | image-blind |" in table
    rows = [r for r in table.splitlines() if r.startswith("| stanford40-action | 14 |")]
    assert [r.split(" | ")[2] for r in rows] == ["top-1 of 40", "top-3 of 40", "top-1 of the 7 drawn"]
    # chance over 40 classes; image-blind = the most frequent test class (and the 3 most frequent)
    results = json.loads(results_path(lay, "clip").read_text())["tasks"]["stanford40-action"]
    counts = sorted((sum(r) for r in results["confusion"]), reverse=True)
    assert rows[0].split(" | ")[3:5] == ["2.5", f"{100 * counts[0] / 14:.1f}"]
    assert rows[1].split(" | ")[3:5] == ["7.5", f"{100 * sum(counts[:3]) / 14:.1f}"]
    # each model's cell holds its value and the bootstrap CI
    assert rows[0].split(" | ")[5] == (f"{100 * results['top1']:.1f} [{100 * results['ci95_top1'][0]:.1f}, "
                                       f"{100 * results['ci95_top1'][1]:.1f}]")
    # among the 7 drawn: focus-eval's drawn task, its chance 1/7 and the image-blind level of its labels
    drawn = json.loads(results_path(lay, "clip").read_text())["tasks"]["stanford40-drawn"]
    per_class = sorted((sum(r) for r in drawn["confusion"]), reverse=True)
    assert rows[2].split(" | ")[3:6] == ["14.3", f"{100 * per_class[0] / 14:.1f}",
                                         f"{100 * drawn['top1']:.1f} [{100 * drawn['ci95_top1'][0]:.1f}, "
                                         f"{100 * drawn['ci95_top1'][1]:.1f}]"]
    # what the numbers mean, beside them, with where it is explained
    assert "FocusCLIP scores below CLIP over all 40 classes and ties it among the 7 activities" in table
    assert 'README.md ("Does the heatmap help?")' in table and "docs/focus-effect.md" in table
    assert any("Look at" in ln for ln in lines)


@pytest.mark.slow
def test_second_run_reuses_every_step(demo_run):
    opt, _, _, _ = demo_run
    again = run_demo(opt, runner=InProcessRunner(), echo=lambda s: None)
    assert {s["status"] for s in again.extra["steps"]} == {"reused"}


def test_real_mpii_joins_the_synthetic_training_set(mpii_samples, tmp_path):
    opt = DemoOptions(out=tmp_path / "run", n_train=6, n_eval=7, mpii_dir=mpii_samples, until="merge")
    report = run_demo(opt, runner=InProcessRunner(), echo=lambda s: None)
    status = {s["name"]: s["status"] for s in report.extra["steps"]}
    assert status["convert-real-mpii"] == "ran" and status["merge"] == "ran"
    lay = Layout(opt.out)
    real = {p.name for p in mpii_samples.glob("*.jpg")}
    merged = {r["image"]: r for r in read_jsonl(lay.annotations)}
    assert real <= merged.keys() and len(merged) == 6 + len(real)
    for name in real:   # linked, not copied, and the record keeps the real 0-based keypoints
        assert (lay.images / name).is_symlink() and (lay.images / name).read_bytes()[:2] == b"\xff\xd8"
        with Image.open(mpii_samples / name) as im:
            assert (merged[name]["width"], merged[name]["height"]) == im.size
    synthetic = next(n for n in merged if n not in real)
    assert (lay.images / synthetic).resolve() == (lay.world_images / synthetic).resolve()

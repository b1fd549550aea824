"""The user's own task: a task file (the shape of eval/tasks/*.json) over an ImageFolder or a CSV of
path,label, run end to end through focus-eval and scored right by a model whose answers are known."""
from __future__ import annotations

import json

import numpy as np
import pytest

from focusclip.core.errors import FocusError
from focusclip.eval.run import EvalOptions, run_eval
from tests.eval import fixtures as fx
from tests.eval.fakes import ColourModel
from tests.eval.test_cli import focus_eval
from tests.eval.tiny_models import save_tiny_checkpoint

CLASSES = ["sitting", "standing", "lying down"]
TEMPLATES = ["a photo of a person {}", "a person {}"]
COUNTS = [3, 2, 1]                                   # images per class


def task_json(reader: dict, **extra) -> dict:
    return {"id": "my-posture", "k": 2, "template": TEMPLATES[0], "ensemble": TEMPLATES, "reader": reader,
            "classes": [{"name": c, "text": c} for c in CLASSES], **extra}


def write_imagefolder(root) -> None:
    """images/<class>/<n>.jpg painted colour(class), plus a text file, a hidden file and a folder
    that is not a class of the task (its two images are skipped as such)."""
    for c, name in enumerate(CLASSES):
        for n in range(COUNTS[c]):
            fx.solid(root / "images" / name / f"{n}.jpg", fx.colour(c))
    (root / "images" / "sitting" / "notes.txt").write_text("not an image")
    (root / "images" / "sitting" / ".DS_Store").write_bytes(b"\0")
    for n in range(2):
        fx.solid(root / "images" / "jumping" / f"{n}.png", fx.colour(7))
    (root / "posture.json").write_text(json.dumps(task_json({"name": "imagefolder", "root": "images"})))


def write_csv(root) -> None:
    """labels.csv (path,label plus an extra column) over pics/, with a missing image and a row without label."""
    rows = ["path,label,comment"]
    for c, name in enumerate(CLASSES):
        for n in range(COUNTS[c]):
            fx.solid(root / "pics" / f"{name[:3]}{n}.png", fx.colour(c))
            rows.append(f"{name[:3]}{n}.png,{name},ok")
    rows += ["gone.png,sitting,missing file", "sit0.png,,no label"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "posture.json").write_text(json.dumps(task_json({"name": "csv", "path": "labels.csv", "images": "pics"})))


WRITERS = {"imagefolder": write_imagefolder, "csv": write_csv}
SKIPS = {"imagefolder": {"label not a class of the task": 2, "not an image file": 1},
         "csv": {"image missing": 1, "no label": 1}}


@pytest.mark.parametrize("kind", ["imagefolder", "csv"])
def test_own_task_runs_end_to_end_through_focus_eval(tmp_path, kind):
    WRITERS[kind](tmp_path / "mine")
    save_tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "results.json"
    r = focus_eval(tmp_path / "run", "--task-file", tmp_path / "mine" / "posture.json", "-o", out,
                   "--workers", "1", "--ensemble", cwd=tmp_path)          # no --data-root: only the task file
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert list(res["tasks"]) == ["my-posture"] and res["mean_tasks"] == ["my-posture"]
    e = res["tasks"]["my-posture"]
    assert (e["status"], e["n"], e["k"], e["classes"]) == ("ok", 6, 2, CLASSES)
    assert e["dataset"] == kind and e["templates"] == TEMPLATES
    assert e["skipped"] == {"count": sum(SKIPS[kind].values()), "reasons": SKIPS[kind]}
    assert np.array(e["confusion"]).sum(axis=1).tolist() == COUNTS
    assert 0 <= e["top1"] <= e["topk"] <= 1 and e["ci95"][0] <= e["topk"] <= e["ci95"][1]
    assert len(e["options"]["task_sha256"]) == 64
    assert "my-posture (top-2)" in r.stdout


def colour_model(mapping=None) -> ColourModel:
    prompts = {t.replace("{}", c): i for i, c in enumerate(CLASSES) for t in TEMPLATES}
    return ColourModel([fx.colour(c) for c in range(3)], prompts, mapping=mapping)


@pytest.mark.parametrize("kind", ["imagefolder", "csv"])
def test_own_task_is_scored_against_its_labels(tmp_path, kind):
    WRITERS[kind](tmp_path / "mine")
    task_file = tmp_path / "mine" / "posture.json"
    o = EvalOptions(data_root=None, output=tmp_path / "r.json", task_files=(task_file,), workers=0, device="cpu",
                    plot=False)
    swap = [1, 0, 2]                                                 # sitting and standing exchanged
    run_eval(o, model=colour_model(swap))
    e = json.loads((tmp_path / "r.json").read_text())["tasks"]["my-posture"]
    assert e["top1"] == pytest.approx(1 / 6) and e["topk"] == 1.0   # only lying down right; all in the top 2
    assert e["confusion"] == [[0, 3, 0], [2, 0, 0], [0, 0, 1]]
    assert e["balanced_accuracy"] == pytest.approx(1 / 3)
    # a rerun reuses it; an edited task file (another template) is another task: scored again
    again = colour_model(swap)
    assert run_eval(o, model=again).counts == {"tasks_reused": 1}
    raw = json.loads(task_file.read_text())
    task_file.write_text(json.dumps({**raw, "ensemble": TEMPLATES[:1]}))
    edited = colour_model(swap)
    assert run_eval(o, model=edited).counts["tasks_ok"] == 1 and edited.images_seen == 6


def test_task_file_errors_are_one_line(tmp_path):
    write_imagefolder(tmp_path)
    path = tmp_path / "posture.json"

    def run(d: dict | str, **kw):
        path.write_text(d if isinstance(d, str) else json.dumps(d))
        return run_eval(EvalOptions(data_root=None, output=tmp_path / "r.json", task_files=(path,), workers=0,
                                    device="cpu", plot=False, **kw), model=colour_model())

    with pytest.raises(FocusError, match=r"task id 'utkface-race' is a built-in task's \(give your task another id\)"):
        run(task_json({"name": "imagefolder", "root": "images"}, id="utkface-race"))
    with pytest.raises(FocusError, match=r"reader 'utkface' is not one for your own data \(use one of imagefolder, csv\)"):
        run(task_json({"name": "utkface"}))
    with pytest.raises(FocusError, match="not valid JSON"):
        run("{")
    with pytest.raises(FocusError, match="task file is missing or mistypes 'template'"):
        run({k: v for k, v in task_json({"name": "imagefolder", "root": "images"}).items() if k != "template"})
    (tmp_path / "bad.csv").write_text("file,class\na.png,sitting\n")
    with pytest.raises(FocusError, match=r"bad.csv: the header has no path or label column"):
        run(task_json({"name": "csv", "path": "bad.csv"}))
    with pytest.raises(FocusError, match=r"no dataset of the 1 selected task\(s\) is here \(expected .*nowhere"):
        run(task_json({"name": "imagefolder", "root": "nowhere"}))
    with pytest.raises(FocusError, match="data root not found"):     # a built-in task needs --data-root
        run(task_json({"name": "imagefolder", "root": "images"}), tasks=("utkface-race",))

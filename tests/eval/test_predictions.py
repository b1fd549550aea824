"""`--predictions FILE`: the parquet file holds every image's labels and ranked classes, and the metrics
computed again from it (here, with numpy) are results.json's, exactly."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from focusclip.eval.metrics import bootstrap_ci
from focusclip.eval.predictions import read_predictions
from tests.eval import fixtures as fx
from tests.eval.test_cli import focus_eval
from tests.eval.tiny_models import save_tiny_checkpoint

TASKS = ("utkface-race", "emotic-emotion", "fer2013-emotion")


def recomputed(rows, num_classes: int, k: int) -> dict:
    """Every metric of a task from its scored rows, by the definitions in docs/eval.md."""
    preds = [list(p) for p in rows["topk"]]
    labels = [set(lab) for lab in rows["labels"]]
    hit1 = np.array([p[0] in lab for p, lab in zip(preds, labels)])
    hitk = np.array([bool(set(p[:k]) & lab) for p, lab in zip(preds, labels)])
    cm = np.zeros((num_classes, num_classes), int)
    for p, lab in zip(preds, labels):
        for c in lab:
            cm[c, p[0]] += 1
    carrying = cm.sum(axis=1)
    return {"n": len(preds), "top1": hit1.mean(), "topk": hitk.mean(),
            "balanced_accuracy": np.mean(np.diag(cm)[carrying > 0] / carrying[carrying > 0]),
            "confusion": cm.tolist(), "ci95": bootstrap_ci(hitk), "ci95_top1": bootstrap_ci(hit1)}


@pytest.fixture
def evaluated(tmp_path):
    data = tmp_path / "data"
    names = [n for n, _, _ in fx.write_utkface(data)]
    (data / "utkface" / "UTKFace" / names[0]).write_bytes(b"not a jpeg")      # a skipped row
    fx.write_emotic(data)
    fx.write_fer2013(data)
    ckpt = save_tiny_checkpoint(tmp_path / "run")
    out, preds = tmp_path / "results.json", tmp_path / "preds.parquet"
    args = [ckpt, "--data-root", data, *[a for t in TASKS for a in ("--task", t)], "-o", out,
            "--predictions", preds, "--workers", "0", "--batch-size", "4"]
    r = focus_eval(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return args, json.loads(out.read_text()), preds


def test_the_predictions_recompute_every_metric_exactly(evaluated):
    _, res, path = evaluated
    df, meta = read_predictions(path)
    assert set(df["model"]) == {res["model"]} and set(df["checkpoint_sha256"]) == {res["checkpoint"]["sha256"]}
    assert meta["models"][res["model"]]["checkpoint"]["sha256"] == res["checkpoint"]["sha256"]
    for task in TASKS:
        entry, rows = res["tasks"][task], df[df["task"] == task]
        assert entry["status"] == "ok", task
        assert meta["tasks"][task]["classes"] == entry["classes"]
        scored = rows[rows["skipped"] == ""]
        # every metric, recomputed; ==, not approx: the same ranking gives the same numbers
        want = recomputed(scored, len(entry["classes"]), entry["k"])
        for key, value in want.items():
            assert entry[key] == value, (task, key)
        # the rows a task scored plus the rows it could not are the samples it read
        assert len(rows) == entry["n"] + sum(v for r, v in entry["skipped"]["reasons"].items()
                                             if r in set(rows["skipped"]))
        for _, row in scored.iterrows():
            assert len(row["topk"]) == min(len(entry["classes"]), max(entry["k"], 5))
            assert list(row["topk_names"]) == [entry["classes"][c] for c in row["topk"]]
            assert list(row["label_names"]) == [entry["classes"][c] for c in row["labels"]]
            assert np.all(np.diff(row["topk_scores"]) <= 0)                 # best first
            assert row["options"] == json.dumps(entry["options"], sort_keys=True)
    utk = df[df["task"] == "utkface-race"]
    bad = utk[utk["skipped"] != ""]
    assert list(bad["skipped"]) == ["unreadable image (UnidentifiedImageError)"] and len(bad["topk"].iloc[0]) == 0
    assert bad["image"].iloc[0].endswith(".jpg.chip.jpg")
    emo = df[df["task"] == "emotic-emotion"]
    assert sorted(map(len, emo["labels"])) == [1, 1, 2]                   # the multi-label person


def test_a_rerun_reuses_tasks_only_when_the_file_holds_their_rows(evaluated, tmp_path):
    args, _, path = evaluated
    before = pq.read_table(path)
    r = focus_eval(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "results.report.json").read_text())["counts"] == {"tasks_reused": 3}
    assert pq.read_table(path).equals(before)
    # another predictions file does not hold them: the tasks are scored again to fill it
    other = tmp_path / "other.parquet"
    r = focus_eval(*[other if a == path else a for a in args], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "results.report.json").read_text())["counts"]["tasks_ok"] == 3
    assert pq.read_table(other).select(["task", "key", "topk"]).equals(before.select(["task", "key", "topk"]))


def test_a_file_that_is_not_a_predictions_file_is_one_line(tmp_path):
    fx.write_utkface(tmp_path / "data")
    (tmp_path / "p.parquet").write_text("hello")
    r = focus_eval(tmp_path / "run", "--data-root", tmp_path / "data", "--task", "utkface-race",
                   "--predictions", tmp_path / "p.parquet", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"error: {tmp_path / 'p.parquet'}: not a parquet file (ArrowInvalid) "
                                "(pass a new path with --predictions, or delete the file)")

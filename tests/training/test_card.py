"""The model card's numbers: `model-index` entries and the results table from a focus-eval results
file, in percent with two decimals, only for the tasks that ran."""
from __future__ import annotations

import pytest

from focusclip.training.card import eval_results, hub_ids_in, results_section

RESULTS = {"model": "tiny-clip@3", "mean": 0.412345,
           "tasks": {"stanford40-action": {"status": "ok", "dataset": "stanford40", "split": "test", "k": 3,
                                           "n": 5532, "topk": 0.523456, "top1": 0.3},
                     "fer2013-emotion": {"status": "missing", "expected": "/d/fer2013/fer2013.csv"},
                     "utkface-race": {"status": "ok", "dataset": "utkface", "split": "all", "k": 1,
                                      "n": 24102, "topk": 0.301234, "top1": 0.301234}}}


def test_model_index_holds_each_task_that_ran_in_percent():
    got = eval_results(RESULTS, "tiny-clip")
    assert [(r.dataset_name, r.dataset_type, r.dataset_split, r.metric_name, r.metric_value) for r in got] == [
        ("stanford40-action", "stanford40", "test", "top-3 accuracy", 52.35),
        ("utkface-race", "utkface", "all", "top-1 accuracy", 30.12)]
    assert all(r.task_type == "zero-shot-image-classification" for r in got)
    assert eval_results({"tasks": {}}, "m") == [] and eval_results({}, "m") == []


def test_results_table_rows_and_mean():
    text = results_section(RESULTS)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == ["| stanford40-action | stanford40 | test | top-3 | 52.35 | 5532 |",
                    "| fer2013-emotion |  |  | | missing | |",
                    "| utkface-race | utkface | all | top-1 | 30.12 | 24102 |"]
    assert text.endswith("Mean top-k over the tasks that ran: **41.23%**.")
    assert "Not evaluated yet" in results_section(None) and "Mean" not in results_section({**RESULTS, "mean": None})


@pytest.mark.parametrize("note, ids", [
    ({"kind": "hub", "name": "openai/clip-vit-base-patch32", "revision": "main"}, ["openai/clip-vit-base-patch32"]),
    ({"kind": "folder", "name": "/models/vit"}, []),
    ({"repo_id": "me/tiny", "id": "not a repo id"}, ["me/tiny"]),
    ("pretrained me/mini-vit", ["me/mini-vit"]),
    ("random init", []),
])
def test_hub_ids_are_found_in_provenance_notes(note, ids):
    assert hub_ids_in(note) == ids

"""The results file and the table of focus-eval: which tasks a mean is over and its value, the cells'
percentages, and a file written and read back (NaN as null)."""
from __future__ import annotations

import json

import pytest

from focusclip.core.errors import FocusError
from focusclip.eval.report import comparison, format_table, mean_topk, ran_tasks, read_results, write_results


def ok(topk, top1=0.5, n=10, ci=(0.1, 0.9), bal=0.25):
    return {"status": "ok", "n": n, "k": 3, "topk": topk, "top1": top1, "balanced_accuracy": bal,
            "ci95": list(ci), "ci95_top1": [0.0, 1.0], "confusion": [[1, 0], [0, 1]]}


MISSING = {"status": "missing", "expected": "/data/fer2013/fer2013.csv"}


def run(model, **tasks):
    return {"model": model, "tasks": {t.replace("_", "-"): e for t, e in tasks.items()}}


def test_the_mean_is_over_the_tasks_that_ran_with_a_number():
    tasks = run("m", a=ok(0.5), b=ok(0.2), c=MISSING, d=ok(float("nan")), e=ok(None), f=ok(0.8))["tasks"]
    assert ran_tasks(tasks) == ["a", "b", "f"]
    assert mean_topk(tasks) == pytest.approx((0.5 + 0.2 + 0.8) / 3)
    assert mean_topk(tasks, only=["a", "c", "d"]) == pytest.approx(0.5)
    assert mean_topk({"c": MISSING}) is None


def test_a_comparison_averages_each_run_over_the_shared_tasks_only():
    runs = [run("clip", a=ok(0.4), b=ok(0.6), c=ok(0.9)),
            run("focusclip", b=ok(0.7), a=ok(0.2), c=MISSING),
            run("focusclip", a=ok(0.3), b=ok(0.5), d=ok(0.1))]      # a second seed: the same name
    cmp = comparison(runs)
    assert cmp["tasks"] == ["a", "b"]                                 # the first run's order
    assert [c["model"] for c in cmp["runs"]] == ["clip", "focusclip", "focusclip"]
    assert [c["mean"] for c in cmp["runs"]] == pytest.approx([0.5, 0.45, 0.4])
    assert [c["left_out"] for c in cmp["runs"]] == [["c"], [], ["d"]]


def test_table_cells_are_percentages_with_two_decimals():
    one = run("clip", a=ok(0.123456, top1=0.05, n=1234, ci=(0.1, 0.15), bal=1.0), b=MISSING)
    runs = [{**one, "mean": 0.123456}]
    table = format_table(runs, {"a": 3, "b": 1, "c": 5})
    lines = table.splitlines()
    row_a = next(line for line in lines if line.startswith("a (top-3)"))
    assert row_a.split(" | ")[1].split() == ["1234", "12.35", "10.00-15.00", "5.00", "100.00"]
    row_b = next(line for line in lines if line.startswith("b (top-1)"))
    assert row_b.split(" | ")[1].split() == ["missing"]
    assert not any(line.startswith("c (top-5)") for line in lines)   # not in any run: no row
    assert lines[-1].startswith("mean top-k (1 tasks)") and lines[-1].split()[-1] == "12.35"


def test_a_table_of_several_runs_names_what_its_mean_leaves_out():
    runs = [run("clip", a=ok(0.4), b=ok(0.6)), run("focusclip", a=ok(0.2))]
    lines = format_table(runs, {"a": 3, "b": 3}).splitlines()
    assert lines[-2].startswith("mean top-k (1 shared tasks)")
    assert [cell.split()[0] for cell in lines[-2].split(" | ")[1:]] == ["40.00", "20.00"]
    assert lines[-1] == "the mean is over the tasks every run has; left out: b"


def test_results_written_then_read_back_with_nan_as_null(tmp_path):
    path = tmp_path / "results.json"
    results = {"model": "m", "tasks": {"a": ok(float("nan"), ci=(float("nan"), float("nan"))), "b": MISSING},
               "mean": None, "mean_tasks": []}
    write_results(path, results)
    text = path.read_text()
    assert "NaN" not in text and '"confusion": [[1, 0], [0, 1]]' not in text
    assert "[1, 0]," in text                                          # number lists stay on one line
    back = read_results(path)
    assert back["tasks"]["a"]["topk"] is None and back["tasks"]["a"]["ci95"] == [None, None]
    assert back["tasks"]["b"] == MISSING and json.loads(text) == back
    assert read_results(tmp_path / "absent.json") is None


@pytest.mark.parametrize("content, message", [("{not json", "not a valid results JSON"),
                                              ('{"model": "m"}', "not a focus-eval results file")])
def test_a_file_that_is_not_results_is_a_user_error(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(FocusError, match=message):
        read_results(path)

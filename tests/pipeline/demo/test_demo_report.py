"""The demo's report without training: the drawn-classes task focus-eval scores, the table and chart
built from results files in focus-eval's shape, and the loss curves' readable range."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from focusclip.data.synthetic.evalsets import DRAWN_CLASSES
from focusclip.pipeline.demo import report as demo_report
from focusclip.pipeline.demo.drawn import DRAWN_TASK, write_drawn_task
from focusclip.pipeline.demo.layout import Layout, results_path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Layout:
    from focusclip.pipeline.synth import run_synth

    lay = Layout(tmp_path_factory.mktemp("demo") / "run")
    run_synth(lay.world, n_train=1, n_eval=21, progress=False)
    return lay


def test_drawn_task_is_the_stanford40_test_set_among_the_drawn_classes(world):
    """focus-eval reads the task file: same images and labels as its Stanford 40 reader, only the drawn
    classes, with the built-in task's template and class texts (so its scores are that task's columns)."""
    from focusclip.eval.run import read_task_data, task_samples
    from focusclip.eval.tasks import load_task_file, select_tasks

    assert write_drawn_task(world).status == "ran"
    assert write_drawn_task(world).status == "reused"
    own, builtin = load_task_file(world.drawn_task), select_tasks(["stanford40-action"])[0]
    assert own.id == DRAWN_TASK and own.k == 1 and own.template == builtin.template
    assert own.class_names == sorted(DRAWN_CLASSES)
    assert own.prompts() == [builtin.prompts()[builtin.class_names.index(c)] for c in own.class_names]
    mine = task_samples(own, read_task_data(own, None), None)
    theirs = task_samples(builtin, read_task_data(builtin, world.eval_root), None)
    assert len(mine[0]) == len(theirs[0]) == 21 and not mine[2]
    assert [Path(s.image.path).resolve() for s in mine[0]] == [Path(s.image.path).resolve() for s in theirs[0]]
    assert [own.class_names[i] for (i,) in mine[1]] == [builtin.class_names[i] for (i,) in theirs[1]]


def _entry(top1, topk, classes, k, ci1=(0.1, 0.3), levels=None) -> dict:
    """A results.json task entry with the fields the report reads (docs/eval.md, Results)."""
    return {"status": "ok", "n": 280, "k": k, "classes": classes, "top1": top1, "topk": topk,
            "ci95_top1": list(ci1), "ci95": [topk - 0.05, topk + 0.05], "levels": levels or {}}


@pytest.fixture()
def results(tmp_path) -> Layout:
    lay = Layout(tmp_path / "run")
    lay.out.mkdir(parents=True)
    forty = [f"c{i}" for i in range(40)]
    for model, t1, d1 in (("clip", 0.21, 0.33), ("focusclip", 0.16, 0.32)):
        tasks = {"stanford40-action": _entry(t1, t1 + 0.07, forty, 3, levels={
                     "chance_top1": 0.025, "chance_topk": 0.075, "blind_top1": 1 / 7, "blind_topk": 3 / 7}),
                 DRAWN_TASK: _entry(d1, d1, sorted(DRAWN_CLASSES), 1, ci1=(d1 - 0.05, d1 + 0.05),
                                    levels={"chance_top1": 1 / 7, "blind_top1": 1 / 7})}
        results_path(lay, model).write_text(json.dumps({"tasks": tasks}))
    return lay


def test_table_names_each_metric_and_joins_the_drawn_top1(results):
    table = demo_report.results_table(results)
    rows = [r.split(" | ") for r in table.splitlines() if r.startswith("| stanford40-action")]
    assert [(r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows] == [
        ("top-1 of 40", "2.5", "14.3", "21.0 [10.0, 30.0]", "16.0 [10.0, 30.0]", "-5.0 |"),
        ("top-3 of 40", "7.5", "42.9", "28.0 [23.0, 33.0]", "23.0 [18.0, 28.0]", "-5.0 |"),
        ("top-1 of the 7 drawn", "14.3", "14.3", "33.0 [28.0, 38.0]", "32.0 [27.0, 37.0]", "-1.0 |")]
    assert not any(DRAWN_TASK in r[0] for r in rows)        # not a task row of its own


def test_chart_labels_metrics_as_the_table_and_draws_chance_and_image_blind(results, monkeypatch):
    figures = []
    monkeypatch.setattr(demo_report, "_save", lambda fig, path: figures.append(fig) or path)
    demo_report.results_chart(results)
    axes = figures[0].axes
    assert [a.get_title() for a in axes] == [f"CLIP vs FocusCLIP, {m} (95% CI)"
                                             for m in ("top-1 of 40", "top-3 of 40", "top-1 of the 7 drawn")]
    for ax, (chance, blind) in zip(axes, ((2.5, 100 / 7), (7.5, 300 / 7), (100 / 7, 100 / 7))):
        levels = sorted(seg[0][1] for c in ax.collections for seg in c.get_segments()
                        if seg[0][1] == seg[1][1] and seg[0][0] != seg[1][0])    # horizontal: not the error bars
        assert levels == pytest.approx(sorted((chance, blind)))
    heights = [[round(p.get_height(), 6) for p in ax.patches] for ax in axes]
    assert heights == [[21.0, 16.0], [28.0, 23.0], [33.0, 32.0]]
    legend = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert legend == ["chance", "image-blind", "CLIP", "FocusCLIP"]


def test_loss_axis_is_cut_to_a_readable_range_and_keeps_the_validation():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = plt.subplots()[1]
    # the first logged losses spike (17 at a 0.07 temperature), then train 4.0 → 2.5; validation to 3.9
    train = [(10, 17.0), (20, 9.0)] + [(s, 4.0 - 1.5 * s / 1000) for s in range(30, 1001, 10)]
    val = [(100, 4.2), (500, 3.9), (1000, 3.95)]
    ax.plot(*zip(*train))
    peak = demo_report.readable_ylim(ax, train + val, val + [(math.inf, math.log(63))])
    lo, hi = ax.get_ylim()
    assert peak == 17.0 and hi < 5 and lo < 2.5 + 0.01    # the spike is off the top, every later loss inside
    assert hi >= 4.2 and hi >= math.log(63)                # the validation and the collapse level are inside
    assert demo_report.readable_ylim(plt.subplots()[1], [(s, 3.0) for s in range(1, 100)]) is None

"""run_eval: missing datasets, resuming, --force, unreadable images, the table and the chart."""
from __future__ import annotations

import json

import pytest

from focusclip.core.errors import FocusError
from focusclip.eval.run import EvalOptions, run_eval
from tests.eval import fixtures as fx
from tests.eval.fakes import ColourModel
from tests.eval.test_metrics import prompt_classes


def utk_model(name="fake-colour"):
    prompts = {**prompt_classes("utkface-race"), **prompt_classes("utkface-age")}
    return ColourModel([fx.colour(r) for r in range(5)], prompts, name=name)


def opts(tmp_path, **kw):
    return EvalOptions(data_root=tmp_path / "data", output=tmp_path / "out" / "results.json", workers=0,
                       batch_size=3, device="cpu", **kw)


def test_missing_datasets_are_reported_and_the_others_run(tmp_path, capsys):
    fx.write_utkface(tmp_path / "data", colour_by="race")
    report = run_eval(opts(tmp_path), model=utk_model())
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["model"] == "fake-colour" and len(res["tasks"]) == 12
    ran = {t for t, e in res["tasks"].items() if e["status"] == "ok"}
    assert ran == {"utkface-age", "utkface-race"}
    assert res["tasks"]["fairface-age"] == {"status": "missing",
                                            "expected": str(tmp_path / "data" / "fairface" / "fairface_label_val.csv")}
    assert res["tasks"]["utkface-race"]["topk"] == 1.0
    assert res["mean"] == pytest.approx((res["tasks"]["utkface-age"]["topk"] + 1.0) / 2)
    table = capsys.readouterr().out
    assert "utkface-race" in table and "missing" in table and "100.00" in table
    png = tmp_path / "out" / "results.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.counts["tasks_missing"] == 10
    saved = json.loads((tmp_path / "out" / "results.report.json").read_text())
    assert saved["skipped"]["utkface-race: malformed file name"] == 4


def test_rerun_skips_finished_tasks_and_force_redoes_them(tmp_path):
    fx.write_utkface(tmp_path / "data", colour_by="race")
    run_eval(opts(tmp_path, tasks=("utkface-race",)), model=utk_model())
    again = utk_model()
    report = run_eval(opts(tmp_path, tasks=("utkface-race",)), model=again)
    assert again.images_seen == 0 and report.counts == {"tasks_reused": 1}
    forced = utk_model()
    run_eval(opts(tmp_path, tasks=("utkface-race",), force=True), model=forced)
    assert forced.images_seen == 10
    # another option (a limit) is another result: evaluated again, not reused
    limited = utk_model()
    run_eval(opts(tmp_path, tasks=("utkface-race",), limit=4), model=limited)
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert limited.images_seen == 4 and res["tasks"]["utkface-race"]["n"] == 4


def test_results_of_another_model_are_not_mixed(tmp_path):
    fx.write_utkface(tmp_path / "data", colour_by="race")
    run_eval(opts(tmp_path, tasks=("utkface-race",)), model=utk_model())
    with pytest.raises(FocusError, match="holds results of model 'fake-colour'"):
        run_eval(opts(tmp_path, tasks=("utkface-race",)), model=utk_model("other"))


def test_unreadable_image_is_counted_not_fatal(tmp_path):
    names = [n for n, _, _ in fx.write_utkface(tmp_path / "data", colour_by="race")]
    (tmp_path / "data" / "utkface" / "UTKFace" / names[0]).write_bytes(b"not a jpeg")
    run_eval(opts(tmp_path, tasks=("utkface-race",)), model=utk_model())
    entry = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]["utkface-race"]
    assert entry["n"] == 9 and entry["top1"] == 1.0
    assert entry["skipped"]["reasons"]["unreadable image (UnidentifiedImageError)"] == 1


def test_compare_puts_two_models_in_one_table(tmp_path, capsys):
    fx.write_utkface(tmp_path / "data", colour_by="race")
    first = tmp_path / "first.json"
    run_eval(EvalOptions(data_root=tmp_path / "data", output=first, tasks=("utkface-race",), workers=0,
                         device="cpu", plot=False), model=utk_model("model-a"))
    capsys.readouterr()
    run_eval(opts(tmp_path, tasks=("utkface-race",), compare=(first,)), model=utk_model("model-b"))
    table = capsys.readouterr().out
    assert "model-a" in table and "model-b" in table


def test_tasks_on_the_same_images_encode_them_once_and_score_as_alone(tmp_path):
    names = [n for n, _, _ in fx.write_utkface(tmp_path / "data", colour_by="race")]
    (tmp_path / "data" / "utkface" / "UTKFace" / names[0]).write_bytes(b"not a jpeg")
    both = utk_model()
    report = run_eval(opts(tmp_path, tasks=("utkface-age", "utkface-race")), model=both)
    together = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]
    assert both.images_seen == 10  # each image once for the two tasks (the bad one as a blank batch row)
    assert report.counts["images_reused"] == 10  # the unreadable one's reason is reused too
    for task in ("utkface-age", "utkface-race"):
        alone = utk_model()
        run_eval(EvalOptions(data_root=tmp_path / "data", output=tmp_path / task / "r.json", tasks=(task,),
                             workers=0, batch_size=3, device="cpu", plot=False), model=alone)
        single = json.loads((tmp_path / task / "r.json").read_text())["tasks"][task]
        assert alone.images_seen == 10
        for key in ("n", "top1", "topk", "balanced_accuracy", "confusion", "skipped"):
            assert together[task][key] == single[key], (task, key)

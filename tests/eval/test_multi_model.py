"""Several models in one pass: each image decoded once and scored by every model, each model's numbers
those it gets alone, one comparison table, chart and file."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from focusclip.core.errors import FocusError
from focusclip.eval import zeroshot
from focusclip.eval.run import EvalOptions, run_eval
from tests.eval import fixtures as fx
from tests.eval.test_cli import focus_eval
from tests.eval.test_run import utk_model
from tests.eval.tiny_models import save_tiny_hf_clip, save_tiny_siglip

TASKS = ("utkface-race", "emotic-emotion")
KEYS = ("n", "k", "top1", "topk", "balanced_accuracy", "ci95", "ci95_top1", "confusion", "skipped", "levels",
        "options", "classes", "metric_version")


def test_siglip_and_clip_in_one_pass_give_what_each_gives_alone(tmp_path):
    data = tmp_path / "data"
    fx.write_utkface(data)
    fx.write_emotic(data)
    sig, clip = save_tiny_siglip(tmp_path / "sig-tiny"), save_tiny_hf_clip(tmp_path / "clip-tiny")
    tasks = [a for t in TASKS for a in ("--task", t)]
    alone = {}
    for folder in (sig, clip):
        out = tmp_path / f"{folder.name}.json"
        r = focus_eval(folder, "--data-root", data, *tasks, "-o", out, "--predictions", tmp_path / f"{folder.name}.parquet",
                       "--workers", "1", "--batch-size", "4", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        alone[folder.name] = json.loads(out.read_text())
    out = tmp_path / "cmp" / "results.json"
    r = focus_eval(sig, clip, "--data-root", data, *tasks, "-o", out, "--predictions", tmp_path / "both.parquet",
                   "--workers", "1", "--batch-size", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(out.read_text())
    names = ["hf-siglip:sig-tiny", "hf-clip:clip-tiny"]
    assert [m["model"] for m in summary["models"]] == names
    assert [m["results"] for m in summary["models"]] == ["results.hf-siglip_sig-tiny.json", "results.hf-clip_clip-tiny.json"]
    for m, folder in zip(summary["models"], (sig, clip)):
        together, single = json.loads((out.parent / m["results"]).read_text()), alone[folder.name]
        assert together["model"] == single["model"] == m["model"]
        assert together["checkpoint"] == single["checkpoint"] and together["mean"] == single["mean"] == m["mean"]
        for task in TASKS:
            for key in KEYS:
                assert together["tasks"][task][key] == single["tasks"][task][key], (folder.name, task, key)
    cmp = summary["comparison"]
    assert cmp["tasks"] == ["emotic-emotion", "utkface-race"] and [c["model"] for c in cmp["runs"]] == names
    assert [c["mean"] for c in cmp["runs"]] == [alone[f.name]["mean"] for f in (sig, clip)]
    # the predictions: the same rows as the two files written alone
    both = pq.read_table(tmp_path / "both.parquet").to_pandas()
    for folder, name in zip((sig, clip), names):
        single = pq.read_table(tmp_path / f"{folder.name}.parquet").to_pandas()
        mine = both[both["model"] == name].reset_index(drop=True)
        assert len(mine) == len(single) > 0
        for col in ("task", "key", "labels", "skipped", "topk", "topk_scores"):
            assert [np.asarray(v).tolist() for v in mine[col]] == [np.asarray(v).tolist() for v in single[col]], col
    # one table with both models, their intervals and the mean over the shared tasks; one chart
    assert "hf-siglip:sig-tiny" in r.stdout and "hf-clip:clip-tiny" in r.stdout
    assert "95% CI" in r.stdout and "mean top-k (2 shared tasks)" in r.stdout
    assert (out.parent / "results.png").stat().st_size > 1000
    report = json.loads((out.parent / "results.report.json").read_text())
    assert report["counts"]["tasks_ok"] == 4


def counting_loads(monkeypatch) -> list:
    """Every image decoded (load_image in the DataLoader's dataset, workers=0 so in this process)."""
    seen = []
    real = zeroshot.load_image

    def load(ref, *a, **k):
        seen.append(ref)
        return real(ref, *a, **k)

    monkeypatch.setattr(zeroshot, "load_image", load)
    return seen


def opts(tmp_path, **kw):
    return EvalOptions(data_root=tmp_path / "data", output=tmp_path / "out" / "results.json", workers=0,
                       batch_size=3, device="cpu", plot=False, **kw)


def test_each_image_is_decoded_once_for_every_model(tmp_path, monkeypatch):
    fx.write_utkface(tmp_path / "data", colour_by="race")
    seen = counting_loads(monkeypatch)
    models = [utk_model("model-a"), utk_model("model-b"), utk_model("model-c")]
    report = run_eval(opts(tmp_path, tasks=("utkface-age", "utkface-race")), models=models)
    assert len(seen) == 10 and len(set(seen)) == 10                 # once, for three models and two tasks
    assert [m.images_seen for m in models] == [10, 10, 10]
    assert report.counts["tasks_ok"] == 6 and report.counts["images_reused"] == 30
    paths = [tmp_path / "out" / f"results.model-{x}.json" for x in "abc"]
    results = [json.loads(p.read_text()) for p in paths]
    assert [r["model"] for r in results] == ["model-a", "model-b", "model-c"]
    assert results[0]["tasks"]["utkface-race"]["topk"] == 1.0
    # a rerun reuses all; one model with stored results beside a new one scores only the new one
    seen.clear()
    assert run_eval(opts(tmp_path, tasks=("utkface-age", "utkface-race")), models=models).counts == {"tasks_reused": 6}
    assert seen == []
    paths[2].unlink()
    fresh = utk_model("model-c")
    report = run_eval(opts(tmp_path, tasks=("utkface-age", "utkface-race")), models=[utk_model("model-a"), fresh])
    assert report.counts["tasks_reused"] == 2 and report.counts["tasks_ok"] == 2 and fresh.images_seen == 10


def test_the_comparison_file_is_not_a_results_file(tmp_path):
    fx.write_utkface(tmp_path / "data", colour_by="race")
    run_eval(opts(tmp_path, tasks=("utkface-race",)), models=[utk_model("model-a"), utk_model("model-b")])
    out = tmp_path / "out" / "results.json"
    # one model into the comparison's -o: refused, not overwritten
    with pytest.raises(FocusError, match="it compares several models: pass one of their results files"):
        run_eval(opts(tmp_path, tasks=("utkface-race",)), model=utk_model("model-a"))
    # --compare takes it: its models join the table
    run_eval(EvalOptions(data_root=tmp_path / "data", output=tmp_path / "c.json", tasks=("utkface-race",), workers=0,
                         device="cpu", plot=False, compare=(out,)), model=utk_model("model-c"))
    got = json.loads((tmp_path / "c.json").read_text())["comparison"]
    assert [r["model"] for r in got["runs"]] == ["model-c", "model-a", "model-b"]
    # and several models refuse to write their comparison over one model's results
    with pytest.raises(FocusError, match="holds one model's results"):
        run_eval(EvalOptions(data_root=tmp_path / "data", output=tmp_path / "c.json", tasks=("utkface-race",),
                             workers=0, device="cpu", plot=False), models=[utk_model("x"), utk_model("y")])

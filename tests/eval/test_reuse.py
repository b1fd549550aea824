"""Which results may be reused, and what a mean averages: finished tasks are kept only for the same
weights (checkpoint.sha256), so a run retrained into its folder is evaluated again; `mean` names its
tasks and a comparison averages over the tasks every run has, and says so."""
from __future__ import annotations

import hashlib
import json

import pytest

from focusclip.eval.run import EvalOptions, run_eval
from tests.eval import fixtures as fx
from tests.eval.test_run import opts, utk_model


def test_retraining_into_the_same_folder_recomputes_every_task(tmp_path):
    """focus-train twice into one output_dir (another seed, so other weights, same name tiny-focusclip@2):
    the second evaluation into the same results file reuses nothing."""
    import torch

    from focusclip.training.config import load_config
    from focusclip.training.trainer import run_train
    from tests.conftest import REPO
    from tests.training.fixtures import make_world, tiny_overrides

    torch.set_num_threads(1)
    world = make_world(tmp_path / "world", n_train=16, n_val=0)
    run, data = tmp_path / "run", tmp_path / "data"
    fx.write_utkface(data)
    sets = {"train.batch_size": 8, "train.max_steps": 2, "train.checkpoint_every": 0}
    eval_opts = EvalOptions(data_root=data, output=tmp_path / "results.json", checkpoint=run,
                            tasks=("utkface-age", "utkface-race"), workers=0, device="cpu", plot=False)

    def sha():
        return hashlib.sha256((run / "checkpoints/last/model.safetensors").read_bytes()).hexdigest()

    run_train(load_config(REPO / "configs/tiny-focusclip.yaml", tiny_overrides(world, run, **sets)))
    first = run_eval(eval_opts)
    assert first.counts["tasks_ok"] == 2
    res = json.loads(eval_opts.output.read_text())
    assert res["checkpoint"] == {"path": str(run / "checkpoints" / "last"), "sha256": sha()}
    assert run_eval(eval_opts).counts == {"tasks_reused": 2}            # same weights: nothing to do

    old = sha()
    run_train(load_config(REPO / "configs/tiny-focusclip.yaml",
                          tiny_overrides(world, run, **sets, **{"train.seed": 7})), force=True)
    assert sha() != old
    logged = []
    again = run_eval(eval_opts, log=logged.append)
    assert again.counts["tasks_ok"] == 2 and "tasks_reused" not in again.counts
    res = json.loads(eval_opts.output.read_text())
    assert res["model"] == "tiny-focusclip@2" and res["checkpoint"]["sha256"] == sha()
    assert any("computed from other weights" in m and old[:12] in m for m in logged)


def test_results_without_a_weights_hash_are_not_reused(tmp_path):
    fx.write_utkface(tmp_path / "data", colour_by="race")
    run_eval(opts(tmp_path, tasks=("utkface-race",)), model=utk_model())
    path = tmp_path / "out" / "results.json"
    res = json.loads(path.read_text())
    del res["checkpoint"]                                              # a file from before the hash
    path.write_text(json.dumps(res))
    again = utk_model()
    run_eval(opts(tmp_path, tasks=("utkface-race",)), model=again)
    assert again.images_seen == 10


def test_mean_names_its_tasks_and_a_comparison_uses_the_shared_ones(tmp_path, capsys):
    fx.write_utkface(tmp_path / "data", colour_by="race")
    both = tmp_path / "both.json"
    run_eval(EvalOptions(data_root=tmp_path / "data", output=both, tasks=("utkface-age", "utkface-race"),
                         workers=0, device="cpu", plot=False), model=utk_model("model-a"))
    a = json.loads(both.read_text())
    assert a["mean_tasks"] == ["utkface-age", "utkface-race"]
    assert a["mean"] == pytest.approx((a["tasks"]["utkface-age"]["topk"] + a["tasks"]["utkface-race"]["topk"]) / 2)
    assert a["tasks"]["utkface-age"]["topk"] < 1.0 == a["tasks"]["utkface-race"]["topk"]   # the means differ
    capsys.readouterr()
    run_eval(opts(tmp_path, tasks=("utkface-race",), compare=(both,)), model=utk_model("model-b"))
    table = capsys.readouterr().out
    b = json.loads((tmp_path / "out" / "results.json").read_text())
    assert b["mean_tasks"] == ["utkface-race"] and b["mean"] == 1.0
    assert b["comparison"] == {"files": [str(both)], "tasks": ["utkface-race"], "runs": [
        {"model": "model-b", "mean": 1.0, "left_out": []},
        {"model": "model-a", "mean": 1.0, "left_out": ["utkface-age"]}]}
    mean_row = next(line for line in table.splitlines() if line.startswith("mean top-k"))
    assert mean_row.startswith("mean top-k (1 shared tasks)") and mean_row.count("100.00") == 2
    assert "the mean is over the tasks every run has; left out: utkface-age" in table
    # alone again, the file says nothing about a comparison
    run_eval(opts(tmp_path, tasks=("utkface-race",)), model=utk_model("model-b"))
    assert "comparison" not in json.loads((tmp_path / "out" / "results.json").read_text())


def test_resize_overrides_the_checkpoint_geometry_and_is_part_of_the_result(tmp_path):
    from focusclip.core.errors import FocusError
    from tests.eval.tiny_models import save_tiny_checkpoint

    fx.write_utkface(tmp_path / "data")
    save_tiny_checkpoint(tmp_path / "run", train_config="data: {resize: squash}\n")
    base = dict(checkpoint=tmp_path / "run", tasks=("utkface-race",))
    run_eval(opts(tmp_path, **base))
    res = tmp_path / "out" / "results.json"
    assert json.loads(res.read_text())["tasks"]["utkface-race"]["options"]["resize"] == "squash"
    report = run_eval(opts(tmp_path, **base, resize="letterbox"))
    assert report.counts["tasks_ok"] == 1 and "tasks_reused" not in report.counts   # another geometry
    assert json.loads(res.read_text())["tasks"]["utkface-race"]["options"]["resize"] == "letterbox"
    with pytest.raises(FocusError, match="--resize: --resize applies to focus-train checkpoints"):
        run_eval(opts(tmp_path, hf_clip=str(tmp_path / "clip"), resize="crop"))


def test_results_of_another_metric_version_are_computed_again(tmp_path):
    """An entry written before `metric_version` (version 1: multi-label balanced accuracy credited
    every label of a top-1 hit) says nothing of its definition: a rerun recomputes it."""
    fx.write_utkface(tmp_path / "data", colour_by="race")
    run_eval(opts(tmp_path, tasks=("utkface-race",)), model=utk_model())
    path = tmp_path / "out" / "results.json"
    res = json.loads(path.read_text())
    assert res["tasks"]["utkface-race"]["metric_version"] == 2
    del res["tasks"]["utkface-race"]["metric_version"]                 # as version 1 wrote it
    path.write_text(json.dumps(res))
    again = utk_model()
    report = run_eval(opts(tmp_path, tasks=("utkface-race",)), model=again)
    assert again.images_seen == 10 and report.counts.get("tasks_ok") == 1 and "tasks_reused" not in report.counts
    assert json.loads(path.read_text())["tasks"]["utkface-race"]["metric_version"] == 2
    same = utk_model()
    assert run_eval(opts(tmp_path, tasks=("utkface-race",)), model=same).counts == {"tasks_reused": 1}

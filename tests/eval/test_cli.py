"""focus-eval end to end through the installed console script, on tiny random models."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np

from tests.conftest import console_script
from tests.eval import fixtures as fx
from tests.eval.tiny_models import save_tiny_checkpoint, save_tiny_hf_clip

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def focus_eval(*args, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([console_script("focus-eval"), *map(str, args)], cwd=cwd, env=env or ENV,
                          capture_output=True, text=True, timeout=300)


def test_checkpoint_of_focus_train_evaluates(tmp_path):
    data = tmp_path / "data"
    fx.write_utkface(data)
    fx.write_kinetics(data)                       # one row is a clip: decoded in a DataLoader worker
    save_tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "res" / "results.json"
    r = focus_eval(tmp_path / "run", "--data-root", data, "--task", "utkface-race", "--task", "kinetics400-action",
                   "--task", "fairface-age", "-o", out, "--workers", "1", "--batch-size", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["model"] == "tiny-clip@3"
    assert res["tasks"]["fairface-age"]["status"] == "missing"
    kin, utk = res["tasks"]["kinetics400-action"], res["tasks"]["utkface-race"]
    assert (kin["n"], kin["k"], len(kin["classes"])) == (4, 3, 400) and np.array(kin["confusion"]).sum() == 4
    assert (utk["n"], utk["k"]) == (10, 1) and utk["skipped"]["count"] == 4
    for e in (kin, utk):
        assert 0 <= e["top1"] <= e["topk"] <= 1 and e["ci95"][0] <= e["topk"] <= e["ci95"][1]
    assert res["mean"] == (kin["topk"] + utk["topk"]) / 2
    assert "kinetics400-action (top-3)" in r.stdout and "missing" in r.stdout
    assert (tmp_path / "res" / "results.png").stat().st_size > 1000
    report = json.loads((tmp_path / "res" / "results.report.json").read_text())
    assert report["counts"]["tasks_ok"] == 2 and report["counts"]["tasks_missing"] == 1


def test_hf_clip_folder_evaluates_beside_another_result(tmp_path):
    data = tmp_path / "data"
    fx.write_fer_folders(data)
    save_tiny_hf_clip(tmp_path / "clip-tiny")
    other = tmp_path / "focus.json"
    other.write_text(json.dumps({"model": "focusclip@9", "mean": 0.5, "tasks": {"fer2013-emotion": {
        "status": "ok", "n": 7, "k": 3, "top1": 0.25, "topk": 0.5, "balanced_accuracy": 0.25,
        "ci95": [0.125, 0.875]}}}))
    out = tmp_path / "clip.json"
    r = focus_eval("--hf-clip", tmp_path / "clip-tiny", "--data-root", data, "--task", "fer2013-emotion",
                   "-o", out, "--workers", "0", "--ensemble", "--compare", other, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    entry = json.loads(out.read_text())["tasks"]["fer2013-emotion"]
    assert json.loads(out.read_text())["model"] == "hf-clip:clip-tiny"
    assert entry["n"] == 7 and len(entry["templates"]) > 1 and entry["options"]["ensemble"] is True
    assert "hf-clip:clip-tiny" in r.stdout and "focusclip@9" in r.stdout and "50.00" in r.stdout


def test_user_errors_are_one_line(tmp_path):
    r = focus_eval("--data-root", tmp_path, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "give one model" in r.stderr
    assert "Traceback" not in r.stderr
    r = focus_eval(tmp_path / "run", "--data-root", tmp_path, "--task", "nope", cwd=tmp_path)
    assert r.returncode == 1 and "unknown task 'nope'" in r.stderr and "Traceback" not in r.stderr
    import torch

    if not torch.cuda.is_available():     # a GPU this machine lacks: the fix, not a fallback to the CPU
        r = focus_eval(tmp_path / "run", "--data-root", tmp_path, "--device", "cuda:0", cwd=tmp_path)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: --device cuda:0: CUDA is not available")
        assert "use --device cpu" in r.stderr, r.stderr


def test_hf_clip_by_hub_id_downloads_then_evaluates_offline_from_the_cache(tmp_path):
    """`--hf-clip ORG/NAME` against a loopback hub (HF_ENDPOINT): downloaded and cached; the weights'
    sha256 is the served file's; offline, the cache serves and the finished task is reused."""
    import hashlib

    from tests.hub_server import HubServer

    data = tmp_path / "data"
    fx.write_fer_folders(data)
    folder = save_tiny_hf_clip(tmp_path / "clip-tiny")
    env = {k: v for k, v in ENV.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1")
    out = tmp_path / "clip.json"
    args = ("--hf-clip", "org/clip-tiny", "--data-root", data, "--task", "fer2013-emotion", "-o", out,
            "--workers", "0")
    with HubServer() as hub:
        commit = hub.serve("org/clip-tiny", folder)
        env["HF_ENDPOINT"] = hub.url
        r = focus_eval(*args, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        res = json.loads(out.read_text())
        assert res["model"] == "hf-clip:org/clip-tiny" and res["tasks"]["fer2013-emotion"]["n"] == 7
        assert res["checkpoint"]["sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        assert f"/org/clip-tiny/resolve/{commit}/model.safetensors" in [r.path for r in hub.requests if r.method == "GET"]
        asked = len(hub.requests)
        r = focus_eval(*args, cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1"})
        assert r.returncode == 0, r.stderr
        assert hub.requests[asked:] == []
        assert json.loads((tmp_path / "clip.report.json").read_text())["counts"] == {"tasks_reused": 1}
        r = focus_eval(*args, cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "cold")})
        assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(
            "error: --hf-clip: CLIP model: org/clip-tiny is not in the Hugging Face cache"), r.stderr
        assert "Traceback" not in r.stderr

"""open_clip models in focus-eval (`open_clip:ARCH:PRETRAINED`, `open_clip:local-dir:DIR`): a tiny
open_clip model built from a config predicts what open_clip's own zero-shot classifier predicts on the
same images, beside a transformers CLIP in one pass as alone, and every way it cannot load is one line.

The tests marked `openclip` need the open-clip extra: `make test-openclip` runs them in .venv-openclip
(torch and torchvision as a matching pair); in .venv, which has no open_clip, they skip. The others
run in .venv, where open_clip is truly absent."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from focusclip.core.errors import FocusError
from focusclip.eval.model import ModelSpec, load_models
from focusclip.eval.predictions import read_predictions
from focusclip.eval.run import EvalOptions, run_eval

HAVE_OPEN_CLIP = importlib.util.find_spec("open_clip") is not None


def openclip(test):
    """Marked `openclip` (make test-openclip selects these) and skipped where open_clip is absent."""
    skip = pytest.mark.skipif(not HAVE_OPEN_CLIP, reason="open_clip is not installed (make test-openclip runs this)")
    return pytest.mark.openclip(skip(test))

ARCH = "FocusTiny-Test"
# a ViT and a text transformer of one layer each, width 32 (open_clip's model_configs/*.json shape);
# the text tower keeps open_clip's BPE vocabulary, so get_tokenizer gives its SimpleTokenizer
CONFIG = {"embed_dim": 16,
          "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "mlp_ratio": 2, "patch_size": 8},
          "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
CLASSES = ["sitting", "standing", "lying down", "running"]
TEMPLATES = ["a photo of a person {}", "a person {}"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def write_task(root: Path, per_class: int = 4) -> Path:
    """An ImageFolder task over noise images of several sizes (so the resize and crop matter)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        for n in range(per_class):
            h, w = int(rng.integers(30, 70)), int(rng.integers(30, 70))
            pixels = rng.integers(0, 256, (h, w, 3)) // 2 + rng.integers(0, 128, 3)
            path = root / "images" / name / f"{n}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels.astype(np.uint8)).save(path)
    task = {"id": "noise-posture", "k": 2, "template": TEMPLATES[0], "ensemble": TEMPLATES,
            "classes": [{"name": c, "text": c} for c in CLASSES], "reader": {"name": "imagefolder", "root": "images"}}
    (root / "task.json").write_text(json.dumps(task))
    return root / "task.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model (registered with open_clip.add_model_config), its eval transform and tokenizer,
    its weights as a file, and as a local-dir folder (open_clip_config.json written by open_clip)."""
    import open_clip
    from open_clip.push_to_hf_hub import save_config_for_hf
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("open_clip")
    (root / f"{ARCH}.json").write_text(json.dumps(CONFIG))
    open_clip.add_model_config(root / f"{ARCH}.json")
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH)
    model.eval()
    save_file(model.state_dict(), root / "tiny.safetensors")
    folder = root / "tiny-dir"
    folder.mkdir()
    save_config_for_hf(model, folder / "open_clip_config.json", model_config=CONFIG)
    save_file(model.state_dict(), folder / "open_clip_model.safetensors")
    return {"model": model, "preprocess": preprocess, "tokenizer": open_clip.get_tokenizer(ARCH),
            "file": root / "tiny.safetensors", "folder": folder}


def open_clip_scores(tiny, images: list[str], templates: list[str]) -> np.ndarray:
    """[N, C] cosines computed by open_clip alone: build_zero_shot_classifier over the class texts and
    templates, encode_image of its eval transform of each image."""
    import open_clip

    classifier = open_clip.build_zero_shot_classifier(tiny["model"], tiny["tokenizer"], CLASSES, templates)  # [D, C]
    pixels = torch.stack([tiny["preprocess"](Image.open(p)) for p in images])
    with torch.no_grad():
        return (tiny["model"].encode_image(pixels, normalize=True) @ classifier).numpy()


def assert_predicts_like_open_clip(tiny, predictions: Path, name: str, templates: list[str]) -> None:
    df, _ = read_predictions(predictions)
    rows = df[df.model == name]
    assert len(rows) == 4 * len(CLASSES) and (rows.skipped == "").all()
    expected = open_clip_scores(tiny, list(rows.image), templates)
    top1 = [int(t[0]) for t in rows.topk]
    assert top1 == expected.argmax(axis=1).tolist()
    assert len(set(top1)) > 1                      # the noise images are not all one class
    np.testing.assert_allclose(np.stack(rows.topk_scores)[:, 0], expected.max(axis=1), atol=1e-5)
    assert [list(map(int, t[:2])) for t in rows.topk] == np.argsort(-expected, axis=1, kind="stable")[:, :2].tolist()


@openclip
@pytest.mark.parametrize("ensemble", [False, True])
def test_arch_and_weights_file_predict_as_open_clips_zero_shot_classifier(tmp_path, tiny, ensemble):
    task = write_task(tmp_path / "mine")
    name = f"open_clip:{ARCH}:{tiny['file']}"
    opts = EvalOptions(data_root=None, output=tmp_path / "r.json", models=(name,), task_files=(task,), workers=0,
                       device="cpu", ensemble=ensemble, predictions=tmp_path / "p.parquet", plot=False)
    run_eval(opts, log=lambda _: None)
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["model"] == f"open_clip:{ARCH}:tiny.safetensors"
    assert res["checkpoint"] == {"path": str(tiny["file"]),
                                 "sha256": hashlib.sha256(tiny["file"].read_bytes()).hexdigest()}
    entry = res["tasks"]["noise-posture"]
    assert entry["n"] == 16 and entry["options"]["resize"] == "processor"
    assert_predicts_like_open_clip(tiny, tmp_path / "p.parquet", res["model"], TEMPLATES if ensemble else TEMPLATES[:1])


@openclip
def test_local_dir_through_the_console_script_predicts_as_open_clip(tmp_path, tiny):
    task = write_task(tmp_path / "mine")
    out = tmp_path / "res" / "results.json"
    # this interpreter's focus-eval: the one of the venv that has open_clip
    script = Path(sys.executable).parent / "focus-eval"
    r = subprocess.run([str(script), f"open_clip:local-dir:{tiny['folder']}", "--task-file", str(task), "-o", str(out),
                        "--predictions", str(tmp_path / "p.parquet"), "--workers", "1", "--batch-size", "5",
                        "--ensemble"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["model"] == "open_clip:local-dir:tiny-dir"
    weights = tiny["folder"] / "open_clip_model.safetensors"
    assert res["checkpoint"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert "noise-posture (top-2)" in r.stdout
    assert_predicts_like_open_clip(tiny, tmp_path / "p.parquet", res["model"], TEMPLATES)


KEYS = ("n", "k", "top1", "topk", "balanced_accuracy", "ci95", "ci95_top1", "confusion", "skipped", "options", "classes")


@openclip
def test_open_clip_and_a_transformers_clip_in_one_pass_give_what_each_gives_alone(tmp_path, tiny):
    from tests.eval.tiny_models import save_tiny_hf_clip

    task = write_task(tmp_path / "mine")
    names = [f"open_clip:local-dir:{tiny['folder']}", str(save_tiny_hf_clip(tmp_path / "clip-tiny"))]

    def run(models: tuple, out: Path):
        opts = EvalOptions(data_root=None, output=out, models=models, task_files=(task,), workers=0, device="cpu",
                           ensemble=True, predictions=out.with_suffix(".parquet"), plot=False)
        run_eval(opts, log=lambda _: None)
        return read_predictions(out.with_suffix(".parquet"))[0]

    alone = [run((n,), tmp_path / f"alone{i}.json") for i, n in enumerate(names)]
    both = run(tuple(names), tmp_path / "both" / "cmp.json")
    summary = json.loads((tmp_path / "both" / "cmp.json").read_text())
    assert [m["model"] for m in summary["models"]] == ["open_clip:local-dir:tiny-dir", "hf-clip:clip-tiny"]
    for i, m in enumerate(summary["models"]):
        together = json.loads((tmp_path / "both" / m["results"]).read_text())
        single = json.loads((tmp_path / f"alone{i}.json").read_text())
        assert together["checkpoint"] == single["checkpoint"] and together["mean"] == single["mean"]
        for key in KEYS:
            assert together["tasks"]["noise-posture"][key] == single["tasks"]["noise-posture"][key], (m["model"], key)
        mine = both[both.model == m["model"]].reset_index(drop=True)
        assert len(mine) == len(alone[i]) == 16
        for col in ("key", "labels", "topk", "topk_scores"):
            assert [np.asarray(v).tolist() for v in mine[col]] == [np.asarray(v).tolist() for v in alone[i][col]], col


def load(name: str, **kw):
    return load_models([ModelSpec(name)], torch.device("cpu"), **kw)[0]


@openclip
def test_what_cannot_load_is_one_line(tmp_path, tiny):
    with pytest.raises(FocusError, match=r"open_clip has no architecture 'ViT-B-23' \(close: ViT-B-32.*; "
                                         r"open_clip.list_models\(\) lists all \d+\)"):
        load("open_clip:ViT-B-23:laion2b_s34b_b79k")
    with pytest.raises(FocusError, match=r"'laion2b' is neither a pretrained tag of ViT-B-32 nor a file \(close: "
                                         r"laion2b_e16, .*; all \d+ in open_clip.list_pretrained_tags_by_model\('ViT-B-32'\)"):
        load("open_clip:ViT-B-32:laion2b")
    with pytest.raises(FocusError, match=rf"no weights file 'laion2b', and open_clip has no pretrained tag for {ARCH}"):
        load(f"open_clip:{ARCH}:laion2b")
    with pytest.raises(FocusError, match=rf"no weights file {tmp_path}/gone.pt \(pass the path"):
        load(f"open_clip:{ARCH}:{tmp_path}/gone.pt")
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(tiny["file"].read_bytes()[:5000])
    with pytest.raises(FocusError, match=rf"{damaged}: cannot read the open_clip model \(SafetensorError"):
        load(f"open_clip:{ARCH}:{damaged}")
    # weights of another architecture: open_clip's strict load_state_dict, or its assertion on the
    # positional embeddings' width, says so; one line
    import open_clip

    for other, width, error in (("FocusTiny-Deeper", 32, "RuntimeError: Error\\(s\\) in loading state_dict"),
                                ("FocusTiny-Wider", 48, "AssertionError: text pos_embed width changed")):
        config = {**CONFIG, "text_cfg": {**CONFIG["text_cfg"], "width": width, "layers": 2}}
        (tmp_path / f"{other}.json").write_text(json.dumps(config))
        open_clip.add_model_config(tmp_path / f"{other}.json")
        with pytest.raises(FocusError, match=rf"{tiny['file']}: cannot read the open_clip model \({error}"):
            load(f"open_clip:{other}:{tiny['file']}")
    with pytest.raises(FocusError, match=r"holds no open_clip_config.json"):
        load(f"open_clip:local-dir:{tmp_path}")


@openclip
@pytest.mark.parametrize("model", ["open_clip:ViT-B-32:laion2b_s34b_b79k",
                                   "open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"])
def test_offline_and_not_in_the_cache_is_one_line_before_any_task(tmp_path, model):
    task = write_task(tmp_path / "mine", per_class=1)
    env = {**ENV, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    script = Path(sys.executable).parent / "focus-eval"
    r = subprocess.run([str(script), model, "--task-file", str(task), "-o", str(tmp_path / "r.json"), "--workers", "0"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"error: {model}: " in lines[0] and "not in the hub cache" in lines[0] and "HF_HUB_OFFLINE" in lines[0]
    assert not (tmp_path / "r.json").exists()


# --- without open_clip (these run in .venv, where it is absent; the first makes it absent anywhere)

def test_open_clip_not_installed_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)        # `import open_clip` raises ImportError
    with pytest.raises(FocusError, match=r"open_clip:ViT-B-32:laion2b_s34b_b79k: open_clip is not installed "
                                         r"\(pip install 'focusclip\[open-clip\]'"):
        load("open_clip:ViT-B-32:laion2b_s34b_b79k")


def test_an_open_clip_name_is_never_a_path_or_hub_id():
    from focusclip.eval.model import model_kind

    assert model_kind("open_clip:ViT-B-32:laion2b_s34b_b79k") == "open_clip"
    assert model_kind("open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K") == "open_clip"
    with pytest.raises(FocusError, match=r"--revision applies to hub ids .*drop it: an open_clip tag"):
        load("open_clip:ViT-B-32:laion2b_s34b_b79k", revision="main")
    with pytest.raises(FocusError, match=r"open_clip:ViT-B-32: an open_clip model needs its architecture and its "
                                         r"weights \(write open_clip:ARCH:PRETRAINED"):
        load("open_clip:ViT-B-32")


@pytest.mark.skipif(HAVE_OPEN_CLIP, reason="open_clip is installed here")
def test_console_script_without_open_clip_says_how_to_install_it(tmp_path):
    from tests.eval.test_cli import focus_eval

    task = write_task(tmp_path / "mine", per_class=1)
    r = focus_eval("open_clip:ViT-B-32:laion2b_s34b_b79k", "--task-file", task, "-o", tmp_path / "r.json",
                   "--workers", "0", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "error: open_clip:ViT-B-32:laion2b_s34b_b79k: open_clip is not installed (pip install 'focusclip[open-clip]'")

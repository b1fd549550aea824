"""The config loader and the `focus-train` console script (a real subprocess)."""
from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
import yaml

from focusclip.core.errors import FocusError
from focusclip.pipeline.demo.stage import _STEPS_DONE
from tests.conftest import REPO, console_script
from tests.training.fixtures import make_world, tiny_overrides
from focusclip.training.config import FocusConfig, TrainConfig, load_config, to_dict

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_every_shipped_config_loads_with_the_paper_settings():
    names = {p.stem: load_config(p) for p in CONFIGS if p.stem != "mini-towers"}   # that one: pretraining
    assert set(names) >= {"focusclip", "clip", "tiny-focusclip", "tiny-clip", "mini-focusclip", "mini-clip"}
    for key in ("focusclip", "clip"):
        c = names[key]
        assert (c.train.batch_size, c.train.epochs, c.train.image_size) == (32, 64, 224)
        assert (c.optim.name, c.optim.lr, c.optim.momentum, c.loss.temperature) == ("sgd", 0.0005, 0.9, 0.5)
        assert (c.model.vision.patch_size, c.model.vision.hidden_size, c.model.vision.num_layers) == (16, 768, 12)
        assert (c.model.text.hidden_size, c.model.text.num_layers, c.model.embed_dim) == (768, 12, 512)
        assert (c.model.vision.pretrained, c.model.text.pretrained) == ("google/vit-base-patch16-224-in21k",
                                                                        "bert-base-uncased")
    for c in names.values():
        assert c.data.resize == "squash"                     # the reference's geometry, in every config
    for key in ("tiny-focusclip", "tiny-clip", "mini-focusclip", "mini-clip"):   # random init only where said
        assert names[key].model.vision.pretrained is None and names[key].model.text.pretrained is None
    assert names["focusclip"].model.triple and not names["clip"].model.triple
    for key in ("focusclip", "clip"):                         # GPU runs read the prepared set
        assert names[key].data.prepared == "out/prepared" and names[key].train.log_every == 10
    assert names["tiny-focusclip"].model.triple and not names["tiny-clip"].model.triple
    mini = names["mini-clip"], names["mini-focusclip"]       # the miniature: one recipe for both
    for c in mini:
        assert (c.optim.name, c.optim.scheduler, c.loss.temperature, c.loss.learn_temperature,
                c.train.batch_size, c.train.max_steps) == ("adamw", "cosine", 0.07, True, 32, 3000)
    assert mini[1].model.triple and not mini[0].model.triple
    assert all((c.model.vision.stem, c.model.vision.pooling, c.train.val_every) == ("conv", "mean", 500) for c in mini)
    assert {k: v for k, v in to_dict(mini[0]).items() if k not in ("model", "loss", "output_dir")} == \
        {k: v for k, v in to_dict(mini[1]).items() if k not in ("model", "loss", "output_dir")}


def test_overrides_and_types(tmp_path):
    c = load_config(REPO / "configs/focusclip.yaml",
                    ["train.epochs=2", "optim.lr=1e-4", "data.describers=[a, b]", "model.vision.pretrained=null",
                     "loss.weights.masked_text=0.5", "data.heatmaps=render"])
    assert isinstance(c, FocusConfig)
    assert (c.train.epochs, c.optim.lr, c.data.describers) == (2, 1e-4, ("a", "b"))
    assert c.model.vision.pretrained is None and c.loss.weights.masked_text == 0.5
    with pytest.raises(AttributeError):
        c.train.epochs = 3                       # frozen
    for bad, needle in (("train.batch_size=1.5", "'train.batch_size' must be an integer"),
                        ("model.triple=yes please", "'model.triple' must be true or false"),
                        ("loss.kind=infonce", "'loss.kind' is 'infonce', not one of ntxent, clip"),
                        ("model.vision.depth=3", "unknown key 'model.vision.depth'")):
        with pytest.raises(FocusError, match=needle.replace("(", r"\(")):
            load_config(REPO / "configs/focusclip.yaml", [bad])


def _cli(*args, cwd=REPO):
    return subprocess.run([console_script("focus-train"), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("yaml_text,needle", [
    ("train: {epochs: 2, batchsize: 8}\n", "unknown key 'train.batchsize'"),
    ("train: {epochs: two}\n", "'train.epochs' must be an integer, got 'two'"),
    ("data: {dataset: no/such/folder}\n", "data.dataset does not exist: no/such/folder"),
    ("model: {vision: {stem: conv, patch_size: 6}}\n", "a convolutional stem needs a power-of-two patch size, got 6"),
    ("model: {vision: {stem: conv, patch_size: 8, stem_channels: [8]}}\n",
     "stem_channels needs 2 widths, got 1"),
    ("train: {val_every: -5}\n", "train.val_every must be 0 (each epoch's end) or a number of steps"),
])
def test_bad_config_is_one_line_and_exit_1(tmp_path, yaml_text, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    r = _cli(cfg, cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, where, message", [
    # a --set typo is blamed on --set, with the nearest key
    (["--set", "train.epoch=1"], "--set", "unknown key 'train.epoch' (did you mean 'train.epochs'? known keys "
                                          "under train: "),
    (["--set", "trian.epochs=1"], "--set", "unknown key 'trian.epochs' (did you mean 'train'? known keys here: "),
    (["--set", "model.vision.hiden_size=8"], "--set", "unknown key 'model.vision.hiden_size' (did you mean "
                                                      "'model.vision.hidden_size'?"),
])
def test_unknown_set_key_is_blamed_on_set_with_did_you_mean(args, where, message):
    r = _cli("configs/mini-clip.yaml", *args, "--check")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {where}: {message}"), lines[0]


def test_unknown_yaml_key_names_the_file_and_the_nearest_key(tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("train: {epoch: 2}\n")
    r = _cli(cfg, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: {cfg}: unknown key 'train.epoch' (did you mean 'train.epochs'? known keys under train: "
        + ", ".join(sorted(f.name for f in dataclasses.fields(TrainConfig))) + ")"]


def test_cli_trains_the_clip_baseline(tmp_path):
    """A CLIP run through the console script: no masked branch anywhere."""
    world = make_world(tmp_path / "w", n_train=32, n_val=8)
    out = tmp_path / "clip"
    sets = tiny_overrides(world, out, **{"train.max_steps": 2, "train.batch_size": 8, "train.checkpoint_every": 0})
    args = ["configs/tiny-clip.yaml"] + [x for s in sets for x in ("--set", s)]
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    # the demo redraws a side-by-side training's bar from this bar's text (pipeline/demo/stage.py)
    assert _STEPS_DONE.findall(r.stderr.encode())[-1:] == [(b"2", b"2")], r.stderr
    assert all("loss_masked_image" not in r and "loss_masked_text" not in r for r in rows)
    assert all(r["alpha"] is None and r["loss"] == r["loss_image_text"] for r in rows)
    model_cfg = json.loads((out / "checkpoints/last/config.json").read_text())
    assert model_cfg["triple"] is False and model_cfg["name"] == "tiny-clip"
    from safetensors.torch import load_file

    keys = load_file(str(out / "checkpoints/last/model.safetensors")).keys()
    assert not any("alpha" in k or "masked" in k for k in keys)
    saved = yaml.safe_load((out / "checkpoints/last/train_config.yaml").read_text())
    assert saved["train"]["max_steps"] == 2 and saved["model"]["triple"] is False


def test_a_config_nested_too_deeply_is_one_line(tmp_path):
    from focusclip.core.errors import FocusError
    from focusclip.training.config import load_config

    path = tmp_path / "deep.yaml"
    path.write_text("data: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(FocusError, match="nested too deeply"):
        load_config(path)

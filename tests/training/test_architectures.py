"""Model sizes named once: configs/models/*.yaml, which every shipped recipe refers to with `architecture:`."""
from __future__ import annotations

import dataclasses
import subprocess

import pytest
import yaml

from focusclip.core.errors import FocusError
from focusclip.training.config import Architecture, build, load_config, to_dict, to_yaml
from focusclip.training.pretrain.config import load_pretrain_config
from tests.conftest import REPO, console_script

CONFIGS = REPO / "configs"
# recipe → its model size; a recipe of each pair differs from the other only in method, not in shape
SIZES = {"clip": "paper", "focusclip": "paper", "mini-clip": "mini", "mini-focusclip": "mini",
         "tiny-clip": "tiny", "tiny-focusclip": "tiny"}
PAIRS = (("clip", "focusclip"), ("mini-clip", "mini-focusclip"), ("tiny-clip", "tiny-focusclip"))
# what a recipe's own `model:` may say once the shapes come from its architecture file
METHOD_KEYS = {"name", "triple", "shared_encoder", "alpha_init", "alpha_trainable"}


def _architecture(size: str) -> Architecture:
    path = CONFIGS / "models" / f"{size}.yaml"
    return build(Architecture, yaml.safe_load(path.read_text()), where=str(path))


def _shapes(cfg) -> dict:
    """The parts of a resolved training config an architecture file sets."""
    return {"vision": to_dict(cfg.model.vision), "text": to_dict(cfg.model.text), "embed_dim": cfg.model.embed_dim,
            "image_size": cfg.train.image_size, "max_text_length": cfg.data.max_text_length}


# fine-tuning recipes take their shapes from the pretrained base they name (model.init), in pairs
FINETUNE = (("clip-ft", "focusclip-ft"), ("mini-clip-ft", "mini-focusclip-ft"))


def test_every_shipped_config_is_covered():
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(SIZES) | {"mini-towers"} | {
        name for pair in FINETUNE for name in pair}


@pytest.mark.parametrize("pair", FINETUNE)
def test_finetune_pairs_share_the_base_and_the_budget(pair):
    clip, focus = (load_config(CONFIGS / f"{name}.yaml") for name in pair)
    assert clip.model.init and clip.model.init == focus.model.init
    assert (clip.optim, clip.train.epochs, clip.train.max_steps, clip.train.batch_size) == (
        focus.optim, focus.train.epochs, focus.train.max_steps, focus.train.batch_size)
    assert not clip.model.triple and focus.model.triple
    assert {p.stem for p in (CONFIGS / "models").glob("*.yaml")} == {"paper", "mini", "tiny"}


@pytest.mark.parametrize("recipe", sorted(SIZES))
def test_recipe_takes_its_shapes_from_its_architecture_file(recipe):
    raw = yaml.safe_load((CONFIGS / f"{recipe}.yaml").read_text())
    assert raw["architecture"] == f"models/{SIZES[recipe]}.yaml"
    assert set(raw["model"]) <= METHOD_KEYS, "the towers are named in the architecture file only"
    assert "image_size" not in raw["train"] and "max_text_length" not in raw["data"]
    arch = _architecture(SIZES[recipe])
    assert _shapes(load_config(CONFIGS / f"{recipe}.yaml")) == to_dict(arch)


@pytest.mark.parametrize("a,b", PAIRS)
def test_clip_and_focusclip_of_one_size_have_the_same_towers(a, b):
    assert _shapes(load_config(CONFIGS / f"{a}.yaml")) == _shapes(load_config(CONFIGS / f"{b}.yaml"))


def test_the_sizes_are_what_their_names_say():
    paper, mini, tiny = (_architecture(s) for s in ("paper", "mini", "tiny"))
    assert (paper.vision.pretrained, paper.text.pretrained) == ("google/vit-base-patch16-224-in21k", "bert-base-uncased")
    assert (paper.vision.hidden_size, paper.vision.patch_size, paper.embed_dim, paper.image_size,
            paper.max_text_length) == (768, 16, 512, 224, 512)
    assert (mini.vision.stem, mini.vision.pooling, mini.vision.init_std, mini.max_text_length) == ("conv", "mean", 0.1, 128)
    assert (tiny.vision.stem, tiny.vision.pooling, tiny.max_text_length) == ("patch", "cls", 256)
    for small in (mini, tiny):
        assert (small.vision.pretrained, small.text.pretrained, small.embed_dim, small.image_size) == (None, None, 64, 64)


def test_the_pretraining_config_has_the_mini_towers_with_vits_own_stem():
    cfg, mini = load_pretrain_config(CONFIGS / "mini-towers.yaml"), _architecture("mini")
    assert cfg.vision == dataclasses.replace(mini.vision, stem="patch", pooling="cls")
    assert cfg.text == dataclasses.replace(mini.text, init_std=0.1)
    assert (cfg.image_size, cfg.data.max_text_length) == (mini.image_size, mini.max_text_length)


def _recipe(tmp_path, recipe: str, arch: str = "embed_dim: 16\nvision: {hidden_size: 48, num_layers: 3}\n"):
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "small.yaml").write_text(arch)
    (tmp_path / "recipe.yaml").write_text(recipe)
    return tmp_path / "recipe.yaml"


def test_the_recipe_and_set_override_the_architecture_file(tmp_path):
    path = _recipe(tmp_path, "architecture: models/small.yaml\nmodel: {vision: {num_layers: 1}, triple: false}\n")
    cfg = load_config(path)
    assert (cfg.model.vision.hidden_size, cfg.model.vision.num_layers, cfg.model.embed_dim) == (48, 1, 16)
    assert cfg.model.vision.num_heads == 12 and cfg.train.image_size == 224    # neither file names them: defaults
    cfg = load_config(path, ["model.vision.hidden_size=96", "model.embed_dim=8", "train.image_size=32"])
    assert (cfg.model.vision.hidden_size, cfg.model.vision.num_layers, cfg.model.embed_dim,
            cfg.train.image_size) == (96, 1, 8, 32)
    # --set architecture=… picks another size, relative to the recipe's folder
    swapped = load_config(CONFIGS / "mini-clip.yaml", ["architecture=models/tiny.yaml"])
    assert _shapes(swapped) == _shapes(load_config(CONFIGS / "tiny-clip.yaml"))


def test_the_resolved_config_is_whole_and_loads_alone(tmp_path):
    cfg = load_config(CONFIGS / "mini-focusclip.yaml")
    text = to_yaml(cfg)
    assert "architecture" not in yaml.safe_load(text)
    (tmp_path / "config.yaml").write_text(text)        # as saved beside a run: no models/ folder beside it
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("arch,needle", [
    ("vision: {depth: 3}\n", "unknown key 'vision.depth'"),
    ("triple: false\n", "unknown key 'triple'"),
    ("embed_dim: wide\n", "'embed_dim' must be an integer, got 'wide'"),
    ("- 1\n", "top level must be a mapping"),
])
def test_a_bad_architecture_file_is_an_error_naming_it(tmp_path, arch, needle):
    path = _recipe(tmp_path, "architecture: models/small.yaml\n", arch)
    with pytest.raises(FocusError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{tmp_path / 'models' / 'small.yaml'}: ") and needle in str(e.value)


@pytest.mark.parametrize("line,needle", [
    ("architecture: models/none.yaml\n", "architecture file not found: "),
    ("architecture: [models/small.yaml]\n", "'architecture' must name a YAML file, got ['models/small.yaml']"),
])
def test_a_bad_architecture_key_is_an_error_naming_the_recipe(tmp_path, line, needle):
    path = _recipe(tmp_path, line)
    with pytest.raises(FocusError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: {needle}")


def test_cli_names_the_architecture_file_in_one_line(tmp_path):
    path = _recipe(tmp_path, "architecture: models/small.yaml\n", "vision: {depth: 3}\n")
    r = subprocess.run([console_script("focus-train"), str(path)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {tmp_path / 'models' / 'small.yaml'}: unknown key 'vision.depth'")


def test_the_pretraining_config_reads_an_architecture_file_too(tmp_path):
    path = _recipe(tmp_path, "architecture: models/small.yaml\nvision: {num_layers: 1}\n",
                   "embed_dim: 16\nimage_size: 32\nmax_text_length: 40\nvision: {hidden_size: 48, num_layers: 3}\n")
    cfg = load_pretrain_config(path)
    assert (cfg.vision.hidden_size, cfg.vision.num_layers, cfg.image_size, cfg.data.max_text_length) == (48, 1, 32, 40)
    with pytest.raises(FocusError, match="unknown key 'vision.depth'"):
        load_pretrain_config(_recipe(tmp_path, "architecture: models/small.yaml\n", "vision: {depth: 3}\n"))


def test_each_loader_points_at_its_own_example():
    """One loader for both configs; each error names the config to look at."""
    with pytest.raises(FocusError, match="config file not found .*configs/mini-towers.yaml"):
        load_pretrain_config(REPO / "nope.yaml")
    with pytest.raises(FocusError, match="config file not found .*configs/focusclip.yaml"):
        load_config(REPO / "nope.yaml")

"""The model card a hub user reads: its usage snippet runs as written (executed here, next to an image,
against a trained checkpoint) and gives load_checkpoint's similarities; the checkpoint carries an image
processor and tokenizer that AutoImageProcessor/AutoProcessor load and that make the training pixels;
`datasets:` names only real hub ids; no path of the training machine reaches the card."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from PIL import Image

from focusclip.training import load_checkpoint
from focusclip.training.card import public_train_config, render_card
from focusclip.training.transforms import pil_to_pixels
from tests.conftest import VENV_BIN
from tests.training.fixtures import trained_tiny

TEXTS = ["a person riding a bike", "a person cooking"]   # the snippet's texts
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_tiny(tmp_path_factory.mktemp("card"), TEXTS)


def _snippet(card: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", card, re.S)
    assert len(blocks) == 1, blocks
    return blocks[0]


def test_the_cards_snippet_runs_as_written_and_gives_the_models_similarities(trained, tmp_path):
    ckpt = trained["ckpt"]
    card = (ckpt / "README.md").read_text()
    code = _snippet(card).replace("path/to/checkpoint", str(ckpt))   # the only word a user replaces
    shutil.copy(trained["world"]["images"] / "000000016.jpg", tmp_path / "person.jpg")
    r = subprocess.run([PYTHON, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    got = eval(r.stdout.strip().splitlines()[-1])   # noqa: S307 — the dict the snippet prints
    m = load_checkpoint(ckpt)
    want = (m.encode_images(m.preprocess(Image.open(tmp_path / "person.jpg"))[None]) @ m.encode_texts(TEXTS).T)[0]
    assert list(got) == TEXTS
    assert torch.allclose(torch.tensor(list(got.values())), want, atol=1e-4), (got, want)
    assert "pip install -e ." in card and "not on PyPI" in card


def test_auto_processors_load_and_make_the_training_pixels(trained):
    from transformers import AutoImageProcessor, AutoProcessor

    import focusclip.training.model  # noqa: F401 — registers model_type focusclip

    ckpt = trained["ckpt"]
    image = Image.open(trained["world"]["images"] / "000000017.jpg")
    m = load_checkpoint(ckpt)
    assert m.resize == "squash"
    pixels = AutoImageProcessor.from_pretrained(ckpt)(images=[image], return_tensors="pt")["pixel_values"]
    assert torch.allclose(pixels[0], m.preprocess(image), atol=1e-4)
    processor = AutoProcessor.from_pretrained(ckpt)
    tok = processor(text=TEXTS, padding=True, return_tensors="pt")
    assert tok["input_ids"].tolist() == m.tokenizer(TEXTS, padding=True, return_tensors="pt")["input_ids"].tolist()


def test_a_cropping_run_gets_a_cropping_processor(trained, tmp_path):
    from transformers import AutoImageProcessor

    from focusclip.training.checkpoint import save_processor

    m = load_checkpoint(trained["ckpt"])
    save_processor(tmp_path, m.model.config, m.tokenizer, "data: {resize: crop}\n")
    image = Image.open(trained["world"]["images"] / "000000017.jpg")    # 96×80: the crop cuts the sides
    pixels = AutoImageProcessor.from_pretrained(tmp_path)(images=[image], return_tensors="pt")["pixel_values"][0]
    want = pil_to_pixels(image, m.image_size, m.image_mean, m.image_std, "crop")
    # the same window; transformers rounds the resized width (76.8 px) down where training rounds it
    # (measured: mean |difference| 0.038 on this noisy image, 0.109 from the squash)
    crop_error, squash_error = (pixels - want).abs().mean(), (pixels - m.preprocess(image)).abs().mean()
    assert crop_error < 0.05 and squash_error > 2 * crop_error


def test_no_path_of_the_training_machine_reaches_the_card(trained):
    card = (trained["ckpt"] / "README.md").read_text()
    root = str(trained["root"])
    assert root not in card and os.path.expanduser("~") + "/" not in card
    dump = yaml.safe_load(re.search(r"```yaml\n(.*?)```", card, re.S).group(1))
    assert dump["data"]["images"] == "<local>/images" and dump["output_dir"] == "<local>/run"
    assert dump["data"]["dataset"] == "<local>/descriptions" and dump["data"]["resize"] == "squash"
    assert "`data.annotations`, `data.dataset`, `data.images`, `output_dir`" in card
    meta = ModelCard(card).data
    assert meta.library_name == "focusclip" and "datasets" not in meta.to_dict()


@pytest.mark.parametrize("dataset, listed", [("someone/mpii-poses", True), ("out/published", False),
                                             ("/data/published", False)])
def test_datasets_metadata_holds_only_hub_ids(trained, tmp_path, monkeypatch, dataset, listed):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out" / "published").mkdir(parents=True)        # as after `focus-data publish -o out/published`
    config = load_checkpoint(trained["ckpt"]).model.config
    config.provenance = {**config.provenance, "dataset": dataset}
    text, changed = public_train_config(f"data: {{dataset: {dataset}}}\n")
    card = ModelCard(render_card(config, text).content)
    assert card.data.to_dict().get("datasets") == ([dataset] if listed else None)
    assert (changed == []) == listed

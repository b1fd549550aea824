"""Fine-tuning a pretrained dual encoder (`model.init`): a tiny CLIPModel served by a loopback hub is
downloaded by the console script and trained with all three views at lr 0 (its exported base-class
folder equals the served weights); tiny CLIP and SigLIP folders trained for real (the loss falls, locked
towers stay bit-identical, the export loads in its own class and in the zero-shot pipeline with
focus-eval's scores); WiSE-FT at 0, 1 and 0.5."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.conftest import REPO, console_script
from tests.hub_server import HubServer
from tests.training.fixtures import make_world, tiny_overrides

CONFIG = "configs/tiny-focusclip.yaml"
TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def _save_base(folder: Path, kind: str, texts: list[str]) -> Path:
    """A random tiny CLIPModel or SiglipModel with a WordPiece tokenizer of the descriptions and its processor."""
    from transformers import (CLIPConfig, CLIPImageProcessorPil, CLIPModel, SiglipConfig, SiglipImageProcessorPil,
                              SiglipModel)

    from focusclip.training.text import train_wordpiece

    tok = train_wordpiece(texts, 300)
    if kind == "siglip":
        tok.model_input_names = ["input_ids"]        # as SigLIP's tokenizer: no attention mask
    tok.save_pretrained(folder)
    text = dict(vocab_size=len(tok), max_position_embeddings=64, pad_token_id=tok.pad_token_id, **TOWER)
    vision = dict(image_size=32, patch_size=8, **TOWER)
    torch.manual_seed(0)
    if kind == "clip":
        text.update(eos_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id)   # pooled at [SEP]
        CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
        CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    else:
        SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).save_pretrained(folder)
        SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    world = make_world(root / "world", n_train=16, n_val=0)
    texts = [json.loads(x)["description"] for x in (world["descriptions"] / "template.jsonl").read_text().splitlines()]
    return {"world": world, "clip": _save_base(root / "clip", "clip", texts),
            "siglip": _save_base(root / "siglip", "siglip", texts), "root": root}


def _run(world, out: Path, init: str, **sets):
    from focusclip.training.config import load_config
    from focusclip.training.trainer import run_train

    torch.set_num_threads(1)
    cfg = load_config(REPO / CONFIG, tiny_overrides(world, out, **{
        "train.max_steps": 6, "train.batch_size": 8, "train.checkpoint_every": 0, "model.init": init, **sets}))
    return run_train(cfg)


def _losses(run: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


def test_hub_init_at_lr_0_exports_the_served_model(world, tmp_path):
    from transformers import CLIPModel

    server = HubServer()
    server.serve("org/tiny-clip", world["clip"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "HUGGINGFACE_"))}
    with server:
        env.update(HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1")
        args = tiny_overrides(world["world"], tmp_path / "run", **{
            "train.max_steps": 2, "train.batch_size": 8, "train.checkpoint_every": 0, "optim.lr": 0.0,
            "model.init": "org/tiny-clip", "loss.kind": "clip"})
        done = subprocess.run([console_script("focus-train"), CONFIG, *[x for s in args for x in ("--set", s)]],
                              capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "vision tower: hub org/tiny-clip@main" in done.stderr
        assert any(r.path.endswith(".safetensors") for r in server.requests if r.method == "GET")
    out = tmp_path / "export"
    done = subprocess.run([console_script("focus-train"), "export", str(tmp_path / "run"), "-o", str(out), "--as-base"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    served, exported = CLIPModel.from_pretrained(world["clip"]), CLIPModel.from_pretrained(out)
    for k, v in served.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[k], v, rtol=0, atol=0, msg=k)
    # the run used the base's processor geometry (CLIP: shorter side, centre crop) and text length
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "resize: crop" in config and "image_size: 32" in config and "max_text_length: 64" in config


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_fine_tune_locks_export_and_pipeline(world, tmp_path, kind):
    from transformers import AutoModel, pipeline

    from focusclip.eval.dual_encoder import load_dual_encoder
    from focusclip.training import load_checkpoint

    run = tmp_path / "run"
    report = _run(world["world"], run, str(world[kind]), **{
        "loss.kind": kind, "optim.lr": 3e-3, "optim.warmup_steps": 0, "model.lock_text": True,
        "data.long_text": "chunk"})
    losses = _losses(run)
    assert len(losses) == 6 and min(losses[-2:]) < losses[0], losses
    assert report.extra["frozen_parameters"]["text"] > 0
    unique = {json.loads(x)["description"] for f in world["world"]["descriptions"].glob("*.jsonl")
              for x in f.read_text().splitlines()}
    assert report.extra["long_text"] == {"descriptions": len(unique), "too_long": 0}   # the world's are short
    base = AutoModel.from_pretrained(world[kind])
    tuned = load_checkpoint(run).model.dual
    for name, p in base.named_parameters():
        same = torch.equal(tuned.state_dict()[name], p.detach())
        locked = name.startswith(("text_model.", "text_projection"))
        assert same == locked, name          # the text tower frozen bit for bit, the rest trained
    out = tmp_path / "export"
    from focusclip.training.base_model import export_as_base
    export_as_base(run, out)
    exported = type(base).from_pretrained(out)
    assert type(exported) is type(base)
    images = [Image.open(world["world"]["images"] / f"{i:09d}.jpg").convert("RGB") for i in (0, 1)]
    labels = ["a person standing", "a person raising the right arm", "a person sitting"]
    scored = pipeline("zero-shot-image-classification", model=str(out), device="cpu")(images[0], candidate_labels=labels,
                                                                                           hypothesis_template="{}")
    enc = load_dual_encoder(str(out), torch.device("cpu"))
    img = enc.encode_images(torch.stack([enc.preprocess(images[0])]))
    cos = (img @ enc.encode_texts(labels).T)[0]
    order = [labels[i] for i in cos.argsort(descending=True).tolist()]
    assert [s["label"] for s in scored] == order       # the pipeline ranks as focus-eval scores
    # and its probabilities are focus-eval's cosines through the model's own head (CLIP: softmax of
    # scale · cos; SigLIP: sigmoid of scale · cos + bias)
    logits = enc.logit_scale * cos + (enc.logit_bias or 0.0)
    probs = logits.softmax(-1) if kind == "clip" else logits.sigmoid()
    got = {s["label"]: s["score"] for s in scored}
    for label, p in zip(labels, probs.tolist()):
        assert got[label] == pytest.approx(p, abs=1e-5), label
    # the checkpoint itself (focus-eval RUN) encodes text as its export does (SigLIP: padded to full length)
    torch.testing.assert_close(load_checkpoint(run).encode_texts(labels), enc.encode_texts(labels), rtol=1e-5, atol=1e-5)


def test_wise_ft_ends_are_exact_and_middle_is_the_mean(world, tmp_path):
    from focusclip.training import load_checkpoint
    from focusclip.training.base_model import wise_ft

    run = tmp_path / "run"
    _run(world["world"], run, str(world["clip"]), **{"loss.kind": "clip", "optim.lr": 3e-3, "train.max_steps": 2})
    tuned = load_checkpoint(run).model.dual.state_dict()
    from transformers import CLIPModel
    base = CLIPModel.from_pretrained(world["clip"]).state_dict()
    got = {}
    for a in (0.0, 0.5, 1.0):
        wise_ft(run, a, tmp_path / f"w{a}")
        got[a] = load_checkpoint(tmp_path / f"w{a}").model.dual.state_dict()
    moved = 0
    for k in base:
        if not base[k].is_floating_point():
            continue
        assert torch.equal(got[0.0][k], base[k]) and torch.equal(got[1.0][k], tuned[k]), k
        assert torch.equal(got[0.5][k], (base[k] + tuned[k]) / 2), k
        moved += not torch.equal(base[k], tuned[k])
    assert moved > 10


def test_a_clip_trained_here_is_continued_with_focus(world, tmp_path):
    """model.init naming a focus-train CLIP checkpoint (two towers): at lr 0 the FocusCLIP run's model
    embeds images and texts as the CLIP did, with its geometry, mean/std and tokenizer."""
    from focusclip.training import load_checkpoint
    from focusclip.training.config import load_config
    from focusclip.training.trainer import run_train

    torch.set_num_threads(1)
    clip = tmp_path / "clip"
    run_train(load_config(REPO / "configs/tiny-clip.yaml", tiny_overrides(world["world"], clip, **{
        "train.max_steps": 2, "train.batch_size": 8, "train.checkpoint_every": 0, "data.resize": "letterbox",
        "model.vision.image_mean": [0.4, 0.4, 0.4]})))
    report = _run(world["world"], tmp_path / "focus", str(clip / "checkpoints" / "last"), **{
        "optim.lr": 0.0, "train.max_steps": 2})
    assert report.extra["init"]["vision"]["kind"] == "folder"
    config = (tmp_path / "focus" / "config.yaml").read_text()
    assert "resize: letterbox" in config and "- 0.4" in config
    a, b = load_checkpoint(clip), load_checkpoint(tmp_path / "focus")
    assert b.model.config.triple and b.resize == "letterbox" and b.image_mean == a.image_mean
    image = Image.open(world["world"]["images"] / "000000000.jpg")
    pixels = torch.stack([a.preprocess(image)])
    torch.testing.assert_close(b.encode_images(pixels), a.encode_images(pixels), rtol=0, atol=0)
    texts = ["a person standing on the left", "a figure"]
    torch.testing.assert_close(b.encode_texts(texts), a.encode_texts(texts), rtol=0, atol=0)


def test_two_ddp_ranks_fine_tune_a_siglip_with_a_locked_tower(world, tmp_path):
    """Under DDP (two gloo ranks) the locks are in place before the wrapper takes the parameters: the
    text tower stays bit-identical, the rest trains (a parameter frozen after wrapping stops DDP)."""
    import socket

    import torch.multiprocessing as mp
    from transformers import SiglipModel

    from focusclip.training import load_checkpoint
    from tests.training.ddp_worker import train_rank

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sets = tiny_overrides(world["world"], tmp_path / "run", **{
        "train.max_steps": 2, "train.batch_size": 8, "train.checkpoint_every": 0, "train.num_workers": 0,
        "model.init": str(world["siglip"]), "loss.kind": "clip", "optim.lr": 3e-3, "model.lock_text": True})
    mp.spawn(train_rank, args=(2, port, str(REPO / CONFIG), sets), nprocs=2)
    base, tuned = SiglipModel.from_pretrained(world["siglip"]), load_checkpoint(tmp_path / "run").model.dual
    for name, p in base.named_parameters():
        frozen = name.startswith("text_model.") or name == "logit_bias"   # bias: only SigLIP's loss uses it
        assert torch.equal(tuned.state_dict()[name], p.detach()) == frozen, name


def test_wise_ft_of_a_run_continued_from_a_checkpoint_of_two_towers(world, tmp_path):
    from focusclip.training import load_checkpoint
    from focusclip.training.base_model import wise_ft
    from focusclip.training.config import load_config
    from focusclip.training.trainer import run_train

    torch.set_num_threads(1)
    run_train(load_config(REPO / "configs/tiny-clip.yaml", tiny_overrides(world["world"], tmp_path / "clip", **{
        "train.max_steps": 1, "train.batch_size": 8, "train.checkpoint_every": 0})))
    _run(world["world"], tmp_path / "focus", str(tmp_path / "clip" / "checkpoints" / "last"), **{
        "optim.lr": 3e-3, "train.max_steps": 2})
    base = load_checkpoint(tmp_path / "clip").model.state_dict()
    tuned = load_checkpoint(tmp_path / "focus").model.state_dict()
    for a in (0.0, 0.5):
        wise_ft(tmp_path / "focus", a, tmp_path / f"w{a}")
    got = {a: load_checkpoint(tmp_path / f"w{a}").model.state_dict() for a in (0.0, 0.5)}
    towers = [k for k in base if k.startswith(("vision.", "text.")) and base[k].is_floating_point()]
    assert len(towers) > 10 and sum(not torch.equal(base[k], tuned[k]) for k in towers) > 10
    for k in towers:
        assert torch.equal(got[0.0][k], base[k]), k
        assert torch.equal(got[0.5][k], (base[k] + tuned[k]) / 2), k
    assert torch.equal(got[0.0]["alpha_logit"], tuned["alpha_logit"])   # FocusCLIP's own: the fine-tuned

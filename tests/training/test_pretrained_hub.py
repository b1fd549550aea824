"""Pretrained towers by hub id, for real but without the network: a loopback hub (tests/hub_server.py,
HF_ENDPOINT) serves a tiny ViT and BERT saved with save_pretrained, and `focus-train` runs as the console
script in a subprocess with its own HF_HOME, so huggingface_hub reads the environment as on a user's
machine. The run downloads them, trains from them (lr 0: the checkpoint's towers are the served
weights); later runs use the cache offline (asking the hub nothing) and with the server stopped; a
cold cache offline, an unknown id and an unknown revision stop in one line before anything is written."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, console_script
from tests.hub_server import HubServer
from tests.training.fixtures import make_world, tiny_overrides

CONFIG = "configs/tiny-focusclip.yaml"


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    """Folders written by save_pretrained: tiny ViT at main and at revision v2, tiny BERT + tokenizer."""
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    from focusclip.training.text import train_wordpiece

    root = tmp_path_factory.mktemp("repos")
    world = make_world(root / "world", n_train=16, n_val=0)
    texts = [json.loads(x)["description"] for x in (world["descriptions"] / "template.jsonl").read_text().splitlines()]
    for seed, name in ((0, "vit"), (1, "vit-v2")):
        torch.manual_seed(seed)
        ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64), add_pooling_layer=False).save_pretrained(root / name)
    tok = train_wordpiece(texts, 300)
    tok.save_pretrained(root / "bert")
    torch.manual_seed(2)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, pad_token_id=tok.pad_token_id),
              add_pooling_layer=False).save_pretrained(root / "bert")
    return {"root": root, "world": world}


@pytest.fixture
def hub(repos):
    server = HubServer()
    commits = {"main": server.serve("org/tiny-vit", repos["root"] / "vit"),
               "v2": server.serve("org/tiny-vit", repos["root"] / "vit-v2", revision="v2"),
               "bert": server.serve("tiny-bert", repos["root"] / "bert")}
    server.commits = commits
    with server:
        yield server


def _env(hub_url: str, hf_home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "HUGGINGFACE_"))}
    return {**env, "HF_ENDPOINT": hub_url, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_TELEMETRY": "1", **extra}


def _train(world, out: Path, env: dict, *sets: str, check: bool = False):
    args = tiny_overrides(world, out, **{"train.max_steps": 2, "train.batch_size": 8, "train.checkpoint_every": 0,
                                         "optim.lr": 0.0, "model.vision.pretrained": "org/tiny-vit",
                                         "model.text.pretrained": "tiny-bert"}) + list(sets)
    cmd = [console_script("focus-train"), CONFIG, *[x for s in args for x in ("--set", s)]]
    return subprocess.run(cmd + (["--check"] if check else []), capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=300)


def _downloads(hub: HubServer) -> list[str]:
    return [r.path for r in hub.requests if r.method == "GET" and r.path.endswith(".safetensors")]


def test_towers_download_train_and_come_from_the_cache_with_the_hub_gone(repos, hub, tmp_path):
    from transformers import AutoTokenizer, BertModel, ViTModel

    from focusclip.training import load_checkpoint

    hf_home, world = tmp_path / "hf", repos["world"]
    first = _train(world, tmp_path / "a", _env(hub.url, hf_home), "model.vision.revision=v2")
    assert first.returncode == 0, first.stderr
    v2, bert = hub.commits["v2"], hub.commits["bert"]
    assert f"vision tower: hub org/tiny-vit@v2 (commit {v2[:12]}, not in the cache: downloads on first use)" \
        in first.stderr
    assert f"text tower: hub tiny-bert@main (commit {bert[:12]}, not in the cache" in first.stderr
    assert sorted(_downloads(hub)) == [f"/org/tiny-vit/resolve/{v2}/model.safetensors",
                                       f"/tiny-bert/resolve/{bert}/model.safetensors"]
    # lr 0: the trained towers are exactly the served ones (v2's, not main's)
    ckpt = tmp_path / "a" / "checkpoints" / "last"
    # through from_pretrained: the file holds transformers' saved key names, state_dict() the live ones
    weights = load_checkpoint(ckpt).model.state_dict()
    vit = ViTModel.from_pretrained(repos["root"] / "vit-v2", add_pooling_layer=False).state_dict()
    main_vit = ViTModel.from_pretrained(repos["root"] / "vit", add_pooling_layer=False).state_dict()
    text = BertModel.from_pretrained(repos["root"] / "bert", add_pooling_layer=False).state_dict()
    for k, v in vit.items():
        torch.testing.assert_close(weights[f"vision.vit.{k}"], v, rtol=0, atol=0, msg=k)
    assert not torch.equal(weights["vision.vit.embeddings.cls_token"], main_vit["embeddings.cls_token"])
    for k, v in text.items():
        if f"text.encoder.{k}" in weights:   # persistent buffers (position ids) are not saved
            torch.testing.assert_close(weights[f"text.encoder.{k}"], v, rtol=0, atol=0, msg=k)
    assert sum(k.startswith("text.encoder.") for k in weights) >= len([k for k in text if "layer" in k])
    served_tok = AutoTokenizer.from_pretrained(repos["root"] / "bert")
    assert AutoTokenizer.from_pretrained(ckpt).get_vocab() == served_tok.get_vocab()
    # the sources, in the report and in the checkpoint
    init = json.loads((tmp_path / "a" / "report.json").read_text())["init"]
    assert init["vision"] == {"kind": "hub", "name": "org/tiny-vit", "revision": "v2", "commit": v2, "cached": False}
    assert init["text"] == init["tokenizer"] == {"kind": "hub", "name": "tiny-bert", "commit": bert, "cached": False}
    provenance = json.loads((ckpt / "config.json").read_text())["provenance"]
    assert {k: provenance[k] for k in ("vision", "text", "tokenizer")} == init

    # offline with the cache: the hub is asked nothing
    asked = len(hub.requests)
    offline = _train(world, tmp_path / "b", _env(hub.url, hf_home, HF_HUB_OFFLINE="1"), "model.vision.revision=v2")
    assert offline.returncode == 0, offline.stderr
    assert f"vision tower: hub org/tiny-vit@v2 (commit {v2[:12]}, in the cache, offline)" in offline.stderr
    assert hub.requests[asked:] == []
    # the hub is gone (online mode): the cache serves, without the minute of retries transformers would spend
    hub.stop()
    gone = _train(world, tmp_path / "c", _env(hub.url, hf_home), "model.vision.revision=v2")
    assert gone.returncode == 0, gone.stderr
    assert f"vision tower: hub org/tiny-vit@v2 (commit {v2[:12]}, in the cache, hub: ConnectError" in gone.stderr
    assert "using the cached copy" in gone.stderr
    for run in ("b", "c"):
        again = load_checkpoint(tmp_path / run).model.state_dict()
        torch.testing.assert_close(again["vision.vit.embeddings.cls_token"], weights["vision.vit.embeddings.cls_token"])


@pytest.mark.parametrize("offline_var", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_cold_cache_offline_is_one_line_and_writes_nothing(repos, hub, tmp_path, offline_var):
    out = tmp_path / "run"
    r = _train(repos["world"], out, _env(hub.url, tmp_path / "cold", **{offline_var: "1"}))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: model.vision.pretrained: vision tower: org/tiny-vit is not in the Hugging "
                                f"Face cache ({tmp_path / 'cold' / 'hub'}) and {offline_var}=1 forbids downloading it"), r.stderr
    assert "`hf download org/tiny-vit`" in lines[-1] and "--set model.vision.pretrained=null" in lines[-1]
    assert "Traceback" not in r.stderr and not out.exists() and hub.requests == []


@pytest.mark.parametrize("sets,needle", [
    (["model.text.pretrained=org/no-such-bert"], "model.text.pretrained: text tower: org/no-such-bert is not a "
                                                 "model on {url} (or it is private and HF_TOKEN is not set)"),
    (["model.vision.revision=v9"], "model.vision.pretrained: vision tower: org/tiny-vit@v9: no such revision on {url}"),
])
def test_unknown_id_or_revision_is_one_line_before_any_work(repos, hub, tmp_path, sets, needle):
    out = tmp_path / "run"
    r = _train(repos["world"], out, _env(hub.url, tmp_path / "hf"), *sets)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: " + needle.format(url=hub.url)), r.stderr
    assert not out.exists() and _downloads(hub) == []


def test_check_prints_each_source_and_downloads_nothing(repos, hub, tmp_path):
    r = _train(repos["world"], tmp_path / "run", _env(hub.url, tmp_path / "hf"), "model.vision.pretrained=null",
               check=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1:4] == ["  vision tower: random init",
                          f"  text tower: hub tiny-bert@main (commit {hub.commits['bert'][:12]}, not in the cache: "
                          "downloads on first use)",
                          "  tokenizer: the text tower's"]
    assert lines[4].startswith("  data: 16 training images")   # the run's data checks, then its plan
    assert {r.method for r in hub.requests} <= {"HEAD", "GET"} and _downloads(hub) == []
    assert not (tmp_path / "run").exists()


def test_a_gated_tower_needs_hf_token_which_is_never_shown(repos, tmp_path):
    token = "hf_test_" + "x" * 20
    with HubServer() as hub:
        hub.serve("org/gated-bert", repos["root"] / "bert", token=token)
        env = _env(hub.url, tmp_path / "hf")
        sets = ("model.vision.pretrained=null", "model.text.pretrained=org/gated-bert")
        r = _train(repos["world"], tmp_path / "run", env, *sets, check=True)
        assert r.returncode == 1
        assert r.stderr.strip().splitlines()[-1] == (
            f"error: model.text.pretrained: text tower: org/gated-bert is gated on {hub.url} (accept its terms on "
            "the model page and set HF_TOKEN to a token with access)")
        r = _train(repos["world"], tmp_path / "run", {**env, "HF_TOKEN": token}, *sets, check=True)
        assert r.returncode == 0, r.stderr
        assert "text tower: hub org/gated-bert@main (commit" in r.stdout
        assert token not in r.stdout + r.stderr


def test_hub_unreachable_and_nothing_cached_is_one_line(repos, tmp_path):
    closed = HubServer().start()
    closed.stop()                                                     # a port nobody listens on
    r = _train(repos["world"], tmp_path / "run", _env(closed.url, tmp_path / "hf"), check=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: model.vision.pretrained: vision tower: cannot get org/tiny-vit from {closed.url} "
                           "(ConnectError"), line
    assert "and it is not in the Hugging Face cache" in line and "--set model.vision.pretrained=null" in line

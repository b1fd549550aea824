"""`focus-train push` and loading by hub id, through the console scripts against a loopback server that
speaks the hub's HTTP API (`HF_ENDPOINT`): one commit with the model folder (no training state), a card
with the zero-shot table as `model-index`, and `focus-eval USER/NAME` giving the local folder's results,
offline from the cache too. The token never appears in any output."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from huggingface_hub import ModelCard

from tests.conftest import console_script
from tests.eval import fixtures as fx
from tests.eval.tiny_models import save_tiny_checkpoint
from tests.hub_server import HubServer

TOKEN = "hf_TEST-token-NEVER-printed-0123456789"   # fake; dashes keep it from looking like a real token
REPO = "someone/tiny-focusclip"
TASKS = ("--task", "utkface-race", "--task", "fairface-age")


def _env(hub_url: str, hf_home, **extra) -> dict:
    env = {**os.environ, "HF_ENDPOINT": hub_url, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1", **extra}
    for key in ("HF_HUB_OFFLINE", "HF_TOKEN"):
        if key not in extra:
            env.pop(key, None)
    return env


def _run(script: str, *args, env) -> subprocess.CompletedProcess:
    return subprocess.run([console_script(script), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A checkpoint evaluated locally, then pushed with its results; the server stays up for the module."""
    root = tmp_path_factory.mktemp("push")
    ckpt = save_tiny_checkpoint(root / "run")
    data = root / "data"
    fx.write_utkface(data)
    with HubServer(TOKEN) as hub:
        env = _env(hub.url, root / "hf", HF_TOKEN=TOKEN)
        local = _run("focus-eval", ckpt, "--data-root", data, *TASKS, "-o", root / "local.json", "--workers", "0",
                     env=env)
        assert local.returncode == 0, local.stderr
        push = _run("focus-train", "push", root / "run", "--repo-id", REPO, "--results", root / "local.json", env=env)
        yield {"hub": hub, "root": root, "ckpt": ckpt, "data": data, "push": push, "env": env,
               "local": json.loads((root / "local.json").read_text())}


def test_push_is_one_commit_of_the_model_folder(pushed):
    push, hub, ckpt = pushed["push"], pushed["hub"], pushed["ckpt"]
    assert push.returncode == 0, push.stderr
    repo = hub.repo(REPO)
    assert len(repo.commits) == 1 and push.stdout.strip().endswith(f"/{REPO}/commit/{repo.sha}")
    assert sorted(repo.files) == ["README.md", "config.json", "model.safetensors", "preprocessor_config.json",
                                  "processor_config.json", "tokenizer.json", "tokenizer_config.json",
                                  "train_config.yaml"]      # no training_state/
    assert (ckpt / "training_state" / "state.pt").is_file()
    for name in repo.files:
        if name != "README.md":
            assert repo.files[name] == (ckpt / name).read_bytes(), name
    assert repo.lfs == {"model.safetensors"}                    # went through the LFS batch + upload route
    assert repo.commits[0]["summary"] == "Upload tiny-clip (FocusCLIP) at step 3"
    writes = [r for r in hub.requests if r.method in ("POST", "PUT") and "lfs-upload" not in r.path]
    assert writes and all(r.token == TOKEN for r in writes)    # the token was sent with every write …
    assert TOKEN not in push.stdout + push.stderr               # … and never shown


def test_pushed_card_parses_with_the_results_as_model_index(pushed):
    card = ModelCard(pushed["hub"].repo(REPO).files["README.md"].decode())
    local = pushed["local"]
    ran = {t: e for t, e in local["tasks"].items() if e["status"] == "ok"}
    assert set(ran) == {"utkface-race"}
    results = card.data.eval_results
    assert [(r.dataset_name, r.metric_value, r.metric_name) for r in results] == [
        ("utkface-race", round(100 * ran["utkface-race"]["topk"], 2), "top-1 accuracy")]
    assert card.data.model_name == "tiny-focusclip" and card.data.to_dict()["model-index"][0]["name"] == "tiny-focusclip"
    assert f'AutoModel.from_pretrained("{REPO}")' in card.text
    assert "| fairface-age |" in card.text and "missing" in card.text


def test_focus_eval_by_hub_id_matches_the_local_folder_and_works_offline(pushed, tmp_path):
    root, data = pushed["root"], pushed["data"]
    out = tmp_path / "hub.json"
    r = _run("focus-eval", REPO, "--data-root", data, *TASKS, "-o", out, "--workers", "0", env=pushed["env"])
    assert r.returncode == 0, r.stderr
    got = json.loads(out.read_text())
    assert got["model"] == pushed["local"]["model"] == "tiny-clip@3"
    ours, theirs = got["tasks"]["utkface-race"], pushed["local"]["tasks"]["utkface-race"]
    for key in ("n", "top1", "topk", "confusion", "classes"):
        assert ours[key] == theirs[key], key
    # offline, from the cache the run above filled; the server refuses everything now
    offline = _env("http://127.0.0.1:9", root / "hf", HF_HUB_OFFLINE="1")
    out2 = tmp_path / "offline.json"
    r = _run("focus-eval", REPO, "--data-root", data, "--task", "utkface-race", "-o", out2, "--workers", "0",
             env=offline)
    assert r.returncode == 0, r.stderr
    assert json.loads(out2.read_text())["tasks"]["utkface-race"]["topk"] == theirs["topk"]


@pytest.mark.parametrize("case", ["offline-uncached", "unknown-repo"])
def test_hub_id_failures_are_one_line(pushed, tmp_path, case):
    env = _env(pushed["hub"].url, tmp_path / "empty-hf", **({"HF_HUB_OFFLINE": "1"} if case == "offline-uncached" else {}))
    repo = REPO if case == "offline-uncached" else "someone/no-such-model"
    r = _run("focus-eval", repo, "--data-root", pushed["data"], "--task", "utkface-race", "-o", tmp_path / "r.json",
             env=env)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    want = ("not in the local hub cache and HF_HUB_OFFLINE is set" if case == "offline-uncached"
            else "no such model on the hub")
    assert lines[-1].startswith(f"error: {repo}: ") and want in lines[-1], lines


def test_push_without_a_token_stops_before_any_request(pushed, tmp_path):
    hub = pushed["hub"]
    before = len(hub.requests)
    r = _run("focus-train", "push", pushed["ckpt"], "--repo-id", REPO, env=_env(hub.url, tmp_path / "no-login"))
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "error: HF_TOKEN: no Hugging Face token for focus-train push "
        "(set HF_TOKEN to a write token or run `hf auth login`)"]
    assert len(hub.requests) == before
    r = _run("focus-train", "push", pushed["ckpt"], "--repo-id", "not a repo", env=_env(hub.url, tmp_path / "x"))
    assert r.returncode == 1 and "is not a hub repo id" in r.stderr


def test_a_hostile_hub_error_reaches_the_terminal_escaped(tmp_path):
    """The server's error text (here an OSC that retitles the terminal and a CSI that clears it) is
    shown with its control characters escaped: no ESC or BEL byte reaches stderr."""
    import re

    from tests.hub_server import Reply

    hostile = "repo refused \x1b]0;pwned\x07\x1b[2J\x9b31m"
    ckpt = save_tiny_checkpoint(tmp_path / "run")
    with HubServer(TOKEN) as hub:
        hub.routes.insert(0, ("POST", re.compile(r"/api/repos/create$"), lambda h: Reply(400, {"error": hostile})))
        r = _run("focus-train", "push", ckpt, "--repo-id", REPO, env=_env(hub.url, tmp_path / "hf", HF_TOKEN=TOKEN))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", r.stderr), repr(r.stderr)   # newline the only control
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {REPO}: push failed: ") and "repo refused \\x1b]0;pwned\\x07\\x1b[2J\\x9b31m" in line
    assert TOKEN not in r.stderr


def test_no_path_of_the_training_machine_is_pushed(tmp_path):
    """The pushed train_config.yaml and card show a local path as `<local>/NAME`; the checkpoint keeps it."""
    train_config = f"data: {{images: {tmp_path}/mpii/images, resize: crop}}\nmodel: {{name: tiny-clip}}\n"
    ckpt = save_tiny_checkpoint(tmp_path / "run", train_config=train_config)
    with HubServer(TOKEN) as hub:
        r = _run("focus-train", "push", ckpt, "--repo-id", REPO, env=_env(hub.url, tmp_path / "hf", HF_TOKEN=TOKEN))
        files = hub.repo(REPO).files
    assert r.returncode == 0, r.stderr
    assert not [name for name, data in files.items() if str(tmp_path).encode() in data]
    assert files["train_config.yaml"].decode() == ("data:\n  images: <local>/images\n  resize: crop\n"
                                                   "model:\n  name: tiny-clip\n")
    assert (ckpt / "train_config.yaml").read_text() == train_config

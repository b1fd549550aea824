"""The published folder's default config (`load_dataset(DIR)` without a name) and the dataset pushed to
a loopback hub (`HF_ENDPOINT`, real HTTP) read back by hub id: by `datasets.load_dataset(ID)` and by
`focus-train` with `data.dataset: USER/NAME`, online and offline from the cache."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from datasets import load_dataset

from focusclip.core.errors import FocusError
from focusclip.pipeline.publish.stage import PublishOptions, run_publish
from tests.conftest import REPO, console_script
from tests.hub_server import HubServer
from tests.pipeline.publish.test_publish import GPT, TEMPLATE, expected_rows, make_inputs
from tests.training.fixtures import make_world, tiny_overrides

TOKEN = "hf_TEST-token-NEVER-printed-0123456789"
DATASET = "someone/mpii-pose-descriptions"


def _card_configs(folder) -> list[dict]:
    text = (folder / "README.md").read_text()
    return yaml.safe_load(text.split("---")[1])["configs"]


def test_two_describer_folder_loads_the_default_config(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run_publish(PublishOptions(inputs["annotations"], inputs["descriptions"], out, prompts_dir=inputs["prompts"]))
    assert list(inputs["descriptions"]) == [GPT, TEMPLATE]
    assert [(c["config_name"], c.get("default", False)) for c in _card_configs(out)] == [(GPT, True), (TEMPLATE, False)]
    ds = load_dataset(str(out), cache_dir=str(tmp_path / "cache"))          # no config name
    want = expected_rows()[GPT]
    assert {s: [r["image"] for r in ds[s]] for s in ds} == {s: [r["image"] for r in rows] for s, rows in want.items()}
    run_publish(PublishOptions(inputs["annotations"], inputs["descriptions"], out, prompts_dir=inputs["prompts"],
                               default_config=TEMPLATE))                    # another default rebuilds the card
    assert [c.get("default", False) for c in _card_configs(out)] == [False, True]
    ds = load_dataset(str(out), cache_dir=str(tmp_path / "cache2"))
    assert set(ds["train"]["describer"]) == {TEMPLATE}
    with pytest.raises(FocusError, match="'nope' is not one of the configs"):
        run_publish(PublishOptions(inputs["annotations"], inputs["descriptions"], out, default_config="nope"))


def _env(url: str, hf_home, **extra) -> dict:
    env = {**os.environ, "HF_ENDPOINT": url, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **extra}
    for key in ("HF_HUB_OFFLINE", "HF_TOKEN"):
        if key not in extra:
            env.pop(key, None)
    return env


# what focus-train does with data.dataset, without paying for torch; errors as the console scripts print them
ITEMS = """
import json, sys
from focusclip.core.errors import run_cli
from focusclip.core.report import Report
from focusclip.training.sources import load_items

def main():
    items = load_items(sys.argv[1], (), None, Report("t"))
    print(json.dumps({"images": len(items), "descriptions": sum(len(i.descriptions) for i in items)}))
run_cli(main)
"""


def test_focus_train_reads_a_pushed_dataset_by_hub_id(tmp_path):
    world = make_world(tmp_path / "world", n_train=16, n_val=8)
    with HubServer(TOKEN) as hub:
        env = _env(hub.url, tmp_path / "hf", HF_TOKEN=TOKEN)
        descs = [x for d in ("template", "second") for x in ("--descriptions", f"{d}={world['descriptions']}/{d}.jsonl")]
        r = subprocess.run([console_script("focus-data"), "publish", "--annotations", str(world["annotations"]), *descs,
                            "-o", str(tmp_path / "published"), "--repo-id", DATASET, "--push"],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert TOKEN not in r.stdout + r.stderr
        pushed = hub.repo(DATASET, "dataset")
        assert len(pushed.commits) == 1 and "README.md" in pushed.files
        out = tmp_path / "run"
        sets = tiny_overrides(world, out, **{"data.dataset": DATASET, "train.max_steps": 1, "train.batch_size": 8,
                                             "train.checkpoint_every": 0})
        r = subprocess.run([console_script("focus-train"), "configs/tiny-focusclip.yaml",
                            *[x for s in sets for x in ("--set", s)]], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["train_images"] == 16 and report["counts"]["train_descriptions"] == 32
    prov = json.loads((out / "checkpoints/last/config.json").read_text())["provenance"]
    assert prov["dataset"] == DATASET and prov["describers"] == {"second": 16, "template": 16}
    card = (out / "checkpoints/last/README.md").read_text()
    assert yaml.safe_load(card.split("---")[1])["datasets"] == [DATASET]
    # the server is gone: offline, the datasets cache serves it; without a cache it is one line
    code = ["python" if not (REPO / ".venv/bin/python").exists() else str(REPO / ".venv/bin/python"), "-c", ITEMS,
            DATASET]
    r = subprocess.run(code, env=_env("http://127.0.0.1:9", tmp_path / "hf", HF_HUB_OFFLINE="1"), capture_output=True,
                       text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"images": 24, "descriptions": 48}
    r = subprocess.run(code, env=_env("http://127.0.0.1:9", tmp_path / "empty-hf", HF_HUB_OFFLINE="1"),
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and lines[-1].startswith(f"error: {DATASET}: ") and "HF_HUB_OFFLINE" in lines[-1], lines

"""`focus-data publish` through the real console script: a build, a rerun, and bad input."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import console_script
from tests.pipeline.publish.test_publish import GPT, SHARD, TEMPLATE, _desc, make_inputs, write_jsonl


def focus_data(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_TOKEN", None)
    return subprocess.run([console_script("focus-data"), "publish", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_build_then_rerun_through_the_console_script(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    args = ["--annotations", str(inputs["annotations"]), "-o", str(out),
            "--descriptions", f"{GPT}={inputs['descriptions'][GPT]}",
            "--descriptions", f"{TEMPLATE}={inputs['descriptions'][TEMPLATE]}", "--test-split"]
    done = focus_data(*args, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{out}: built, 2 config(s), 15 rows" in done.stdout
    assert f"  {GPT}: train 4 (1 shards), validation 3 (1 shards), test 2 (1 shards)" in done.stdout
    assert f"skipped 1: {GPT}: image not in annotations" in done.stderr
    assert sorted(p.name for p in (out / GPT).iterdir()) == sorted(
        SHARD.format(s, 0, 1) for s in ("train", "validation", "test"))
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["splits"] == ["train", "validation", "test"] and report["counts"]["rows"] == 15

    again = focus_data(*args, tmp_path=tmp_path)
    assert again.returncode == 0 and "up to date (--force rebuilds)" in again.stdout


def test_missing_descriptions_option_is_a_usage_error(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    done = focus_data("--annotations", str(inputs["annotations"]), "-o", str(tmp_path / "out"), tmp_path=tmp_path)
    assert done.returncode == 2 and "--descriptions" in done.stderr


@pytest.mark.parametrize("case, expected", [
    ("unmatched", "none of its 1 descriptions is of an image in the annotations"),
    ("bad_name", "config name 'gpt/4o' is not valid on the hub"),
    ("missing_annotations", "annotations file not found"),
    ("not_name_path", "is not NAME=PATH"),
])
def test_bad_input_is_one_line_exit_1_and_leaves_no_folder(tmp_path, case, expected):
    """The cases of the issue through the real script; the rest of the checks run in-process in
    test_publish.py (same FocusError → `run_cli` path)."""
    inputs = make_inputs(tmp_path / "in")
    ann, gpt = str(inputs["annotations"]), str(inputs["descriptions"][GPT])
    args = {"--annotations": ann, "--descriptions": f"{GPT}={gpt}"}
    if case == "unmatched":
        write_jsonl(inputs["descriptions"][GPT], [_desc("123456789.jpg", GPT, "nobody")])
    elif case == "bad_name":
        args["--descriptions"] = f"gpt/4o={gpt}"
    elif case == "missing_annotations":
        args["--annotations"] = str(tmp_path / "absent.jsonl")
    elif case == "not_name_path":
        args["--descriptions"] = gpt
    flat = [x for kv in args.items() for x in kv]
    done = focus_data(*flat, "-o", str(tmp_path / "out"), tmp_path=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.incomplete").exists()

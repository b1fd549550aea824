"""`run_publish(PublishOptions)`: the report's options are the resolved plan's, with the keys and values a
folder built before carries (its fingerprint hashes them, so a change would rebuild every folder)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from focusclip.pipeline.publish.stage import PublishOptions, resolve_options, run_publish
from tests.pipeline.publish.test_publish import GPT, TEMPLATE, make_inputs


def test_report_options_are_the_resolved_plan(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run_publish(PublishOptions(inputs["annotations"], inputs["descriptions"], out, include_test=True,
                               max_shard_size="1MB", prompts_dir=inputs["prompts"], default_config=TEMPLATE))
    saved = json.loads((out / "report.json").read_text())["options"]
    assert saved == {
        "annotations": str(inputs["annotations"]),
        "descriptions": [[GPT, str(inputs["descriptions"][GPT])], [TEMPLATE, str(inputs["descriptions"][TEMPLATE])]],
        "out_dir": str(out), "splits": ["train", "validation", "test"], "with_images": False,
        "images_dir": None, "heatmaps_dir": None, "max_shard_size": 1_000_000, "repo_id": None, "push": False,
        "private": False, "prompts_dir": str(inputs["prompts"]), "default_config": TEMPLATE, "force": False,
        "allow_incomplete_shards": False}


def test_options_are_frozen_and_defaults_resolve(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    opts = PublishOptions(inputs["annotations"], {GPT: inputs["descriptions"][GPT]}, tmp_path / "out")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.push = True
    plan = resolve_options(opts)
    assert (plan.splits, plan.default_config, plan.max_shard_size) == (("train", "validation"), GPT, 500_000_000)

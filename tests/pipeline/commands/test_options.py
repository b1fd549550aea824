"""The options `describe` and `filter --regenerate` share are declared once; the choices `--help` shows
are the library's name lists; the filter passes on to describe only what its command line gave."""
from __future__ import annotations

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from focusclip.data.records import SPLITS, write_annotations
from focusclip.pipeline.cli import app
from focusclip.pipeline.describe.backends import BACKENDS
from focusclip.pipeline.filter.checks import CHECKS
from tests.pipeline.describe.test_describe import image_seed, random_annotations

# The generation options of both commands, by flag (issue 29).
GENERATION = ("--backend", "--model", "--revision", "--base-url", "--concurrency", "--seed", "--temperature",
              "--top-p", "--max-tokens", "--thinking", "--keep-reasoning", "--prompt", "--with-coords", "--timeout",
              "--max-retries", "--server-wait")
# Their defaults differ only where the filter's is "the rejected records' own" (None), which the help
# text of both says.
RECORDS_OWN = {"--backend": "template", "--prompt": "pose-v1"}


def _params(name: str) -> tuple:
    command = typer.main.get_command(app).commands[name]
    return command, {p.opts[-1]: p for p in command.params}


def test_describe_and_filter_show_the_same_generation_options():
    describe, d = _params("describe")
    filter_, f = _params("filter")
    shared = set(d) & set(f)
    assert shared == {*GENERATION, "--device", "--output"}
    for flag in sorted(shared):
        assert d[flag].opts == f[flag].opts, flag
        assert d[flag].get_help_record(typer.Context(describe)) == \
               f[flag].get_help_record(typer.Context(filter_)), flag    # help text and the default it shows
        if flag in RECORDS_OWN:
            assert (d[flag].default, f[flag].default) == (RECORDS_OWN[flag], None), flag
            assert f"Default: {RECORDS_OWN[flag]} (filter --regenerate: the rejected records' own)" in d[flag].help
        else:
            assert d[flag].default == f[flag].default, flag


def _help(*args: str) -> str:
    r = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("command", ["describe", "filter"])
def test_help_lists_exactly_the_backends(command):
    choices = re.search(r"--backend\s+<([^>]+)>", _help(command)).group(1)
    assert choices.split("|") == list(BACKENDS)


def test_help_lists_exactly_the_splits_and_the_checks():
    assert re.search(r"--split\s+<([^>]+)>", _help("describe")).group(1).split("|") == list(SPLITS)
    checks = re.search(r"Run only this check \(repeatable\): ([^.]+)\.", _help("filter")).group(1)
    assert checks.split(", ") == list(CHECKS)


@pytest.fixture
def described(tmp_path):
    """Annotations and their template descriptions, through `focus-data describe`."""
    ann, desc = tmp_path / "annotations.jsonl", tmp_path / "template.jsonl"
    write_annotations(ann, random_annotations(6))
    r = CliRunner().invoke(app, ["describe", str(ann), "-o", str(desc), "--seed", "3", "--temperature", "0.7",
                                 "--limit", "4"])
    assert r.exit_code == 0, r.output
    return ann, desc


def test_describe_report_options_keep_their_keys_and_values(described):
    ann, desc = described
    saved = json.loads(desc.with_suffix(".report.json").read_text())
    assert saved["options"] == {
        "annotations": str(ann), "output": str(desc), "backend": "template", "model": None, "base_url": None,
        "concurrency": 1, "split": None, "limit": 4, "shard": None, "seed": 3, "temperature": 0.7,
        "max_tokens": 512, "prompt_id": "pose-v1", "describer": "template", "round": 0, "with_coords": False,
        "force": False, "redo_images": 0, "revision": None, "top_p": None, "thinking": False,
        "keep_reasoning": False, "structured": False, "prompt_file": None, "images": None, "image_max_side": 768,
        "mark": "box", "image_url": "data"}
    rows = list(map(json.loads, desc.read_text().splitlines()))
    assert [(r["params"]["run_seed"], r["params"]["seed"]) for r in rows] == [(3, image_seed(3, r["image"]))
                                                                              for r in rows]


def test_filter_passes_on_only_the_options_given(described, tmp_path):
    ann, desc = described
    out = tmp_path / "template.kept.jsonl"
    r = CliRunner().invoke(app, ["filter", str(desc), "--annotations", str(ann), "-o", str(out), "--regenerate", "1",
                                 "--seed", "0", "--max-retries", "2", "--with-coords", "--device", "auto"])
    assert r.exit_code == 0, r.output
    saved = json.loads(out.with_suffix(".report.json").read_text())
    # a default given explicitly is passed on; one left out is not (the round takes the records' own)
    assert saved["options"]["describe_options"] == {"seed": 0, "with_coords": True, "max_retries": 2,
                                                    "device": "auto"}
    r = CliRunner().invoke(app, ["filter", str(desc), "--annotations", str(ann), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.with_suffix(".report.json").read_text())["options"]["describe_options"] == {}

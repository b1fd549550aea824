"""One writer per output (docs/filter.md): a filter whose kept file, or whose descriptions file when it
regenerates, is held by another run is refused at once with one line, writing and asking nothing."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from focusclip.core.errors import FocusError
from focusclip.core.lock import lock_path, output_lock
from focusclip.data.records import write_annotations
from focusclip.data.synthetic.world import WorldConfig, training_image
from focusclip.pipeline.describe.stage import DescribeOptions, run_describe
from focusclip.pipeline.filter.stage import rejected_path_for, run_filter
from tests.conftest import console_script


@pytest.fixture
def inputs(tmp_path) -> dict:
    """12 generated images, their template descriptions, and a last record with no text for the first
    image (rejected by `empty`, so `--regenerate` asks describe for that image again)."""
    anns = [training_image(3, i, WorldConfig())[0] for i in range(12)]
    write_annotations(tmp_path / "annotations.jsonl", anns)
    desc = tmp_path / "template.jsonl"
    run_describe(DescribeOptions(tmp_path / "annotations.jsonl", desc, backend="template"), progress=False)
    rows = [json.loads(line) for line in desc.read_text().splitlines()]
    with open(desc, "a") as f:
        f.write(json.dumps({**rows[0], "description": ""}) + "\n")
    return {"annotations": tmp_path / "annotations.jsonl", "descriptions": desc, "first": rows[0]["image"]}


class Spy:
    """A describe backend that records what it is asked and answers with a fixed sentence."""
    name = "template"

    def __init__(self):
        self.asked: list[str] = []

    def run(self, jobs, emit) -> None:
        from focusclip.pipeline.describe.types import Answer

        for job in jobs:
            self.asked.append(job.image)
            emit(job, Answer("The person is standing with both arms at their sides in a quiet room.", "stop", {}),
                 None)


def test_a_held_kept_output_refuses_the_filter_and_leaves_the_earlier_outputs(inputs, tmp_path):
    out = tmp_path / "template.kept.jsonl"
    run_filter(inputs["descriptions"], inputs["annotations"], out)
    before = {p: p.read_bytes() for p in (out, rejected_path_for(out), out.with_suffix(".report.json"))}
    with output_lock(out):   # another run writing the same kept file (a holder in this process is one too)
        with pytest.raises(FocusError) as e:
            run_filter(inputs["descriptions"], inputs["annotations"], out)
    msg = str(e.value)
    assert "\n" not in msg and str(out) in msg and "is being written by pid" in msg
    assert {p: p.read_bytes() for p in before} == before
    assert not lock_path(out).exists()


def test_a_regenerating_filter_is_refused_while_a_describe_appends_to_its_descriptions(inputs, tmp_path):
    spy = Spy()
    out = tmp_path / "k.jsonl"
    with output_lock(inputs["descriptions"]):   # a describe run on the descriptions file
        with pytest.raises(FocusError, match="is being written by pid"):
            run_filter(inputs["descriptions"], inputs["annotations"], out, regenerate=1,
                       describe_options={"backend_obj": spy})
        assert spy.asked == [] and not out.exists()
        plain = run_filter(inputs["descriptions"], inputs["annotations"], out)   # reading it is fine
        assert plain.counts["rejected"] == 1
    report = run_filter(inputs["descriptions"], inputs["annotations"], out, regenerate=1,
                        describe_options={"backend_obj": spy})
    assert spy.asked == [inputs["first"]] and report.extra["rounds"][0]["new_descriptions"] == 1
    assert not lock_path(inputs["descriptions"]).exists() and not lock_path(out).exists()


def test_cli_second_filter_is_one_line_and_exit_1_at_once(inputs, tmp_path):
    out = tmp_path / "k.jsonl"
    cmd = [console_script("focus-data"), "filter", str(inputs["descriptions"]), "--annotations",
           str(inputs["annotations"]), "-o", str(out)]
    with output_lock(out):
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        took = time.monotonic() - t0
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "is being written by pid" in lines[0], r.stderr
    assert "one process per -o output" in lines[0] and not out.exists()
    assert took < 60   # refused, not waiting (the process start alone takes seconds on a busy machine)
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=120).returncode == 0

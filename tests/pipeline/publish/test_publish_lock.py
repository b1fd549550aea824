"""One publish per folder (`DIR.lock`), an "up to date" that checks the files the report lists, and a
`DIR.incomplete` left by a killed run removed by the next (docs/publish.md)."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from focusclip.core.lock import lock_path
from focusclip.pipeline.publish.stage import PublishOptions, run_publish
from tests.pipeline.publish.test_publish import SHARD, TEMPLATE, expected_rows, load_offline, make_inputs
from tests.pipeline.publish.test_publish_cli import focus_data

TRAIN = f"{TEMPLATE}/{SHARD.format('train', 0, 1)}"
VALIDATION = f"{TEMPLATE}/{SHARD.format('validation', 0, 1)}"

# A publish that stops after writing its shards into DIR.incomplete and waits for a flag file.
PAUSED = textwrap.dedent("""
    import pathlib, sys, time
    from focusclip.pipeline.publish import stage
    annotations, descriptions, out, go, force = sys.argv[1:]
    real = stage.write_config
    def paused(*args, **kwargs):
        summary = real(*args, **kwargs)
        print("shards written", flush=True)
        while not pathlib.Path(go).exists():
            time.sleep(0.02)
        return summary
    stage.write_config = paused
    stage.run_publish(stage.PublishOptions(pathlib.Path(annotations), {"template": pathlib.Path(descriptions)},
                                           pathlib.Path(out), force=force == "force"))
    print("done", flush=True)
""")


def _paused_publish(inputs: dict, out: Path, go: Path, force: bool = False) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", PAUSED, str(inputs["annotations"]),
                          str(inputs["descriptions"][TEMPLATE]), str(out), str(go), "force" if force else "-"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "shards written", p.stderr.read()
    return p


def _args(inputs: dict, out: Path) -> list[str]:
    return ["--annotations", str(inputs["annotations"]), "-o", str(out),
            "--descriptions", f"{TEMPLATE}={inputs['descriptions'][TEMPLATE]}"]


def _publish(inputs: dict, out: Path):
    return run_publish(PublishOptions(inputs["annotations"], {TEMPLATE: inputs["descriptions"][TEMPLATE]}, out))


def test_the_report_records_size_and_sha256_of_every_file(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    _publish(inputs, out)
    listed = json.loads((out / "report.json").read_text())["files"]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(listed) == [f for f in on_disk if f != "report.json"] == sorted(["README.md", TRAIN, VALIDATION])
    for rel, info in listed.items():
        data = (out / rel).read_bytes()
        assert info == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, rel


def test_a_missing_or_truncated_file_or_an_older_report_is_rebuilt_not_up_to_date(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    _publish(inputs, out)
    good = {rel: (out / rel).read_bytes() for rel in (TRAIN, VALIDATION, "README.md")}

    (out / TRAIN).unlink()
    done = focus_data(*_args(inputs, out), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{out}: rebuilt: missing shard {TRAIN}, 1 config(s)" in done.stdout
    assert (out / TRAIN).read_bytes() == good[TRAIN]

    size = len(good[VALIDATION])
    with open(out / VALIDATION, "r+b") as f:
        f.truncate(size // 2)
    rebuilt = _publish(inputs, out)
    assert not rebuilt.extra["up_to_date"]
    assert rebuilt.extra["rebuilt_because"] == (f"size differs: shard {VALIDATION} has {size // 2} bytes, "
                                                f"report.json says {size}")
    (out / "README.md").unlink()
    assert _publish(inputs, out).extra["rebuilt_because"] == "missing file README.md"

    report = json.loads((out / "report.json").read_text())
    del report["files"]   # as written by a publish that recorded no sizes
    (out / "report.json").write_text(json.dumps(report))
    older = _publish(inputs, out)
    assert older.extra["rebuilt_because"] == "report.json records no file sizes (an older publish)"
    again = _publish(inputs, out)
    assert again.extra["up_to_date"] and "rebuilt_because" not in again.extra
    assert {rel: (out / rel).read_bytes() for rel in good} == good
    loaded = load_offline(out, [TEMPLATE], tmp_path / "hf")[TEMPLATE]
    assert loaded == expected_rows()[TEMPLATE]


def test_two_concurrent_publishes_leave_one_good_dataset_and_one_clear_refusal(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    out, go = tmp_path / "out", tmp_path / "go"
    first = _paused_publish(inputs, out, go)   # holds the folder, its shards written in out.incomplete
    try:
        second = focus_data(*_args(inputs, out), tmp_path=tmp_path)
    finally:
        go.touch()
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 1 and "Traceback" not in second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}: is being written by pid {first.pid}"), lines
    assert "one process per -o output" in lines[0]
    assert not (tmp_path / "out.incomplete").exists() and not lock_path(out).exists()
    loaded = load_offline(out, [TEMPLATE], tmp_path / "hf2")[TEMPLATE]
    assert loaded == expected_rows()[TEMPLATE]


def test_a_killed_runs_incomplete_folder_is_removed_by_the_next_run(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    out, go = tmp_path / "out", tmp_path / "go"
    _publish(inputs, out)
    stamp = (out / TRAIN).stat().st_mtime_ns
    killed = _paused_publish(inputs, out, go, force=True)   # a forced rebuild, killed mid-build
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    incomplete = tmp_path / "out.incomplete"
    assert (incomplete / TRAIN).is_file() and lock_path(out).exists()   # what the kill left behind
    again = _publish(inputs, out)
    assert again.extra["up_to_date"] and (out / TRAIN).stat().st_mtime_ns == stamp
    assert not incomplete.exists() and not lock_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert sorted(os.listdir(out / TEMPLATE)) == sorted([Path(TRAIN).name, Path(VALIDATION).name])


def test_a_full_disk_while_writing_shards_names_the_folder(tmp_path, monkeypatch):
    """pyarrow's ENOSPC carries no file name: the split's folder is named instead."""
    import errno

    from datasets import Features, Value
    from datasets.arrow_writer import ParquetWriter

    from focusclip.core.errors import user_message
    from focusclip.pipeline.publish.shards import write_split

    def full(self, table):
        raise OSError(errno.ENOSPC, "Error writing bytes to file")

    monkeypatch.setattr(ParquetWriter, "write_table", full)
    with pytest.raises(OSError) as e:
        write_split(iter([{"description": "x", "people": []}]),
                    Features({"description": Value("string"), "people": [Value("int32")]}), tmp_path, "cfg",
                    "train", 1 << 20)
    assert e.value.filename == str(tmp_path / "cfg")
    assert user_message(e.value).startswith(f"{tmp_path / 'cfg'}: no space left")

"""One writer per output (docs/describe.md): two `focus-data describe` processes on one JSONL never both
call the server; shards writing their own files run side by side."""
from __future__ import annotations

import os
import subprocess
import time

from focusclip.core.io import read_jsonl
from focusclip.core.lock import lock_path, output_lock
from focusclip.data.records import write_annotations
from tests.conftest import console_script
from tests.pipeline.describe.test_describe import random_annotations
from tests.pipeline.describe.test_describe_openai import SECRET, server_factory, tag  # noqa: F401 (fixture)


def _cli(ann, out, server, *extra) -> list[str]:
    return [console_script("focus-data"), "describe", str(ann), "-o", str(out), "--backend", "openai",
            "--model", "test-model", "--base-url", server.url, "--concurrency", "2", *extra]


def _wait_for_lines(path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while (not path.exists() or path.read_text().count("\n") < n) and proc.poll() is None:
        assert time.monotonic() < deadline, "the first describe wrote nothing"
        time.sleep(0.02)


def test_a_second_describe_on_one_output_is_refused_and_each_image_is_asked_once(server_factory, tmp_path):
    server = server_factory(delay=0.8)   # about 5 s of work: the second run comes while the first asks
    anns = random_annotations(12)
    ann, out = tmp_path / "a.jsonl", tmp_path / "d" / "o.jsonl"
    write_annotations(ann, anns)
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    first = subprocess.Popen(_cli(ann, out, server), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        _wait_for_lines(out, 1, first)
        assert first.poll() is None, "the first describe ended before the second started"
        second = subprocess.run(_cli(ann, out, server), env=env, capture_output=True, text=True, timeout=120)
        still_running = first.poll() is None
    finally:
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert still_running   # the refusal came while the first run was still asking: it did not wait
    assert second.returncode == 1 and "Traceback" not in second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), second.stderr
    assert f"is being written by pid {first.pid}" in lines[0] and str(out) in lines[0]
    assert len(server.gets) == 1   # the second run never reached the server, not even its model list
    asked = sorted(e["tag"] for e in server.log)
    assert len(asked) == len(anns) == len(set(asked)), "an image was asked for twice"
    rows = read_jsonl(out, allow_torn_tail=False)
    assert sorted(r["image"] for r in rows) == sorted(a.image for a in anns)
    assert not lock_path(out).exists()


def test_a_shard_into_its_own_file_is_not_blocked_by_another_file_held(server_factory, tmp_path):
    server = server_factory()
    anns = random_annotations(12)
    ann = tmp_path / "a.jsonl"
    write_annotations(ann, anns)
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    outs = [tmp_path / f"s{i}.jsonl" for i in range(2)]
    with output_lock(outs[0]):   # shard 0 of the same run, still writing its own file
        own = subprocess.run(_cli(ann, outs[1], server, "--shard", "1/2"), env=env, capture_output=True,
                             text=True, timeout=120)
        same = subprocess.run(_cli(ann, outs[0], server, "--shard", "0/2"), env=env, capture_output=True,
                              text=True, timeout=120)
    assert own.returncode == 0, own.stderr
    assert sorted(r["image"] for r in read_jsonl(outs[1])) == sorted(a.image for a in anns[1::2])
    assert same.returncode == 1 and "is being written by pid" in same.stderr and not outs[0].exists()
    assert len(server.log) == len(anns[1::2])

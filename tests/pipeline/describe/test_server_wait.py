"""`describe --backend openai` waiting for a server that is not up: its first line says what it waits for,
how long and how to change or skip the wait; OpenAI's own API gets a short wait; the final error
names only what the user set (--base-url, OPENAI_BASE_URL, or neither: the network)."""
from __future__ import annotations

import os
import socket
import subprocess

import pytest

from focusclip.data.records import write_annotations
from focusclip.pipeline.describe.openai_api import PUBLIC_WAIT_S, OpenAIBackend
from focusclip.pipeline.describe.types import GenParams
from tests.conftest import console_script
from tests.pipeline.describe.test_describe import random_annotations

KEY = "test-key-never-printed"


def _closed_port() -> int:
    with socket.socket() as s:      # a loopback port with nothing listening on it
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _describe(tmp_path, *args, **env) -> subprocess.CompletedProcess:
    ann = tmp_path / "annotations.jsonl"
    write_annotations(ann, random_annotations(2))
    environ = {**os.environ, "OPENAI_API_KEY": KEY, **env}
    if "OPENAI_BASE_URL" not in env:
        environ.pop("OPENAI_BASE_URL", None)
    return subprocess.run([console_script("focus-data"), "describe", str(ann), "-o", str(tmp_path / "d.jsonl"),
                           "--backend", "openai", "--model", "m", "--max-retries", "0", "--timeout", "2", *args],
                          capture_output=True, text=True, timeout=60, env=environ)


def test_the_wait_says_what_it_waits_for_and_how_to_skip_it_first(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    r = _describe(tmp_path, "--base-url", url, "--server-wait", "1")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, r.stderr
    assert lines[0] == (f"waiting up to 1 s for the server at {url}/models (asked every second; "
                        "--server-wait S changes the wait, --server-wait 0 asks once)")
    assert lines[-1].startswith(f"error: --base-url: no server answered at {url}/models in 1 s (connection refused)")


def test_an_environment_base_url_is_blamed_not_an_option_never_passed(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    r = _describe(tmp_path, "--server-wait", "1", OPENAI_BASE_URL=url)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith(f"error: OPENAI_BASE_URL: no server answered at {url}/models")
    assert "--base-url" not in r.stderr and KEY not in r.stderr


def test_openais_own_api_gets_a_short_wait_and_blames_the_network(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    public = OpenAIBackend("gpt-4o-mini", None, GenParams(), api_key=KEY)
    assert public.server_wait_s() == PUBLIC_WAIT_S == 30.0
    assert OpenAIBackend("m", None, GenParams(server_wait_s=5), api_key=KEY).server_wait_s() == 5   # chosen
    assert OpenAIBackend("m", "http://127.0.0.1:8000/v1", GenParams(), api_key=KEY).server_wait_s() == 600
    message = str(public._no_server(30, "connection refused"))
    assert message.startswith("no server answered at api.openai.com/models in 30 s (connection refused)")
    assert "network" in message and "--base-url" not in message


@pytest.mark.parametrize("wait", ["0"])
def test_server_wait_0_asks_once_without_a_bar(tmp_path, wait):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    r = _describe(tmp_path, "--base-url", url, "--server-wait", wait)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"error: --base-url: no server answered at {url}/models in 0 s (connection refused) (start the server "
        "first and check --base-url; `vllm serve` answers once the model is loaded (a gated model needs HF_TOKEN, "
        "see its log); wait longer with --server-wait)"]

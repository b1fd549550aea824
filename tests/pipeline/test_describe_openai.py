"""The `openai` backend against a real chat-completions server on loopback, with injected faults."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from focusclip.data.errors import FocusError
from focusclip.data.io import read_jsonl
from focusclip.data.records import write_annotations
from focusclip.pipeline.describe.stage import run_describe
from focusclip.pipeline.describe.openai_api import retry_after_seconds
from focusclip.prompts import build_prompt
from tests.conftest import console_script
from tests.pipeline.test_describe import random_annotations

SECRET = "sk-test-S3CRET-never-show-me"


def tag(user_prompt: str) -> str:
    return hashlib.sha256(user_prompt.encode()).hexdigest()[:12]


class ChatServer:
    """A chat-completions endpoint on 127.0.0.1. `faults` are served, in order, to the first requests:
    429 (Retry-After: 1), 500, 503, cut (200 with a truncated JSON body), short (a body shorter than its
    Content-Length, then the connection closes), drop (connection closed with no response), empty
    (a 200 with no text), 401, 404. `length_below`: finish_reason 'length' while max_tokens is smaller."""

    def __init__(self, faults=(), delay=0.0, always=None, length_below=0):
        self.faults, self.delay, self.always, self.length_below = list(faults), delay, always, length_below
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.log: list[dict] = []   # one entry per request: time, prompt tag, fault, auth header
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    fault = server.always or (server.faults.pop(0) if server.faults else None)
                    server.log.append({"t": time.monotonic(), "tag": tag(body["messages"][-1]["content"]),
                                       "fault": fault, "auth": self.headers.get("Authorization", ""),
                                       "max_tokens": body.get("max_tokens")})
                try:
                    time.sleep(server.delay)
                    server.respond(self, body, fault)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def respond(self, h, body, fault):
        if fault == "drop":
            h.close_connection = True
            return
        status = {"429": 429, "500": 500, "503": 503, "401": 401, "404": 404}.get(fault, 200)
        if status != 200:
            payload = json.dumps({"error": {"message": f"injected {fault}", "type": "x", "code": status}}).encode()
            return self.send(h, status, payload, {"Retry-After": "1"} if status == 429 else {})
        text = "" if fault == "empty" else f"There is one person in the image. [{tag(body['messages'][-1]['content'])}]"
        finish = "length" if (body.get("max_tokens") or 0) < self.length_below else "stop"
        payload = json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}).encode()
        if fault == "cut":
            return self.send(h, 200, payload[: len(payload) // 2])
        if fault == "short":
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload[: len(payload) // 3])
            h.close_connection = True
            return
        self.send(h, 200, payload)

    @staticmethod
    def send(h, status, payload, headers=None):
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(payload)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory():
    servers = []

    def make(**kw):
        servers.append(ChatServer(**kw))
        return servers[-1]
    yield make
    for s in servers:
        s.close()


def describe(anns, out, server, **kw):
    kw = {"backend": "openai", "model": "test-model", "base_url": server.url, "backoff_s": 0.05,
          "timeout_s": 5.0, "progress": False, **kw}
    return run_describe(anns, out, **kw)


def test_faults_are_retried_and_every_image_ends_with_one_description(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    faults = ["429", "500", "503", "cut", "short", "drop", "empty"]
    server = server_factory(faults=faults, delay=0.05)
    anns = random_annotations(10)
    out = tmp_path / "d" / "test-model.jsonl"
    report = describe(anns, out, server, concurrency=3)
    rows = read_jsonl(out, allow_torn_tail=False)
    assert sorted(r["image"] for r in rows) == sorted(a.image for a in anns)
    for r, a in zip(sorted(rows, key=lambda r: r["image"]), sorted(anns, key=lambda a: a.image)):
        assert r["description"].endswith(f"[{tag(build_prompt(a).user)}]")  # its own prompt's answer
        assert (r["describer"], r["backend"], r["usage"]) == \
               ("test-model", "openai", {"prompt_tokens": 11, "completion_tokens": 7})
    assert len(server.log) == 10 + len(faults)
    assert 2 <= server.max_in_flight <= 3
    first = server.log[0]  # the 429: its prompt came back only after the Retry-After second
    again = next(e for e in server.log[1:] if e["tag"] == first["tag"])
    assert again["t"] - first["t"] >= 0.95
    assert report.counts.get("failed", 0) == 0 and report.extra["usage"]["completion_tokens"] == 70
    assert all(e["auth"] == f"Bearer {SECRET}" for e in server.log)
    written = out.read_text() + out.with_suffix(".report.json").read_text()
    assert SECRET not in written


def test_finish_reason_length_asks_again_with_more_tokens(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = server_factory(length_below=1000)
    anns = random_annotations(2)
    describe(anns, tmp_path / "a.jsonl", server, max_tokens=300, concurrency=1)
    rows = read_jsonl(tmp_path / "a.jsonl")
    assert [r["finish_reason"] for r in rows] == ["stop", "stop"]
    assert [r["params"]["max_tokens"] for r in rows] == [1200, 1200]
    assert [e["max_tokens"] for e in server.log] == [300, 600, 1200] * 2
    # Still cut off after the allowed retries: the answer is kept and says so (the filter rejects it).
    describe(anns[:1], tmp_path / "b.jsonl", server, max_tokens=100, concurrency=1)
    assert [r["finish_reason"] for r in read_jsonl(tmp_path / "b.jsonl")] == ["length"]


def test_exhausted_retries_are_reported_and_retried_on_the_next_run(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    anns = random_annotations(3)
    out = tmp_path / "o.jsonl"
    report = describe(anns, out, server_factory(faults=["500", "500"]), concurrency=1, max_retries=1)
    assert report.counts["failed"] == 1 and report.extra["failures"][0]["image"] == anns[0].image
    assert "HTTP 500" in report.extra["failures"][0]["error"]
    assert {r["image"] for r in read_jsonl(out)} == {anns[1].image, anns[2].image}
    healthy = server_factory()
    report = describe(anns, out, healthy, concurrency=1)
    assert report.counts["asked"] == 1 and len(healthy.log) == 1
    assert len(read_jsonl(out)) == 3


def test_404_is_a_user_error_without_retries(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = server_factory(always="404")
    with pytest.raises(FocusError, match="--model"):
        describe(random_annotations(6), tmp_path / "o.jsonl", server, concurrency=2)
    assert len(server.log) <= 2


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds({"retry-after": date}) <= 31
    assert retry_after_seconds({}) is None


def _cli(ann, out, server, concurrency, env):
    return [console_script("focus-data"), "describe", str(ann), "-o", str(out), "--backend", "openai",
            "--model", "test-model", "--base-url", server.url, "--concurrency", str(concurrency)]


def test_cli_401_is_one_line_and_never_shows_the_key(server_factory, tmp_path):
    server = server_factory(always="401")
    ann = tmp_path / "a.jsonl"
    write_annotations(ann, random_annotations(8))
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    r = subprocess.run(_cli(ann, tmp_path / "o.jsonl", server, 4, env), capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "OPENAI_API_KEY" in errors[0] and "401" in errors[0]
    assert SECRET not in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert 1 <= len(server.log) <= 4  # the workers in flight, then stop: no retries


def test_sigkill_mid_run_then_resume_loses_nothing_and_duplicates_nothing(server_factory, tmp_path):
    server = server_factory(delay=0.25)
    anns = random_annotations(16)
    ann, out = tmp_path / "a.jsonl", tmp_path / "o.jsonl"
    write_annotations(ann, anns)
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    proc = subprocess.Popen(_cli(ann, out, server, 2, env), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 4):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    kept = out.read_text().count("\n")
    assert 4 <= kept < 16
    with open(out, "a") as f:
        f.write('{"image": "0000')  # as if the kill had landed mid-write
    asked_before = len(server.log)
    r = subprocess.run(_cli(ann, out, server, 2, env), env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out, allow_torn_tail=False)
    assert len(rows) == 16 and {r["image"] for r in rows} == {a.image for a in anns}
    assert len(server.log) - asked_before == 16 - kept  # only the missing images were asked for


def test_a_fatal_error_in_every_worker_at_once_leaves_no_unretrieved_task(caplog, monkeypatch):
    # When all workers hit the same fatal error in one event-loop step, every task's exception must be
    # retrieved; otherwise asyncio logs "Task exception was never retrieved" with a traceback to stderr.
    import gc

    from focusclip.pipeline.describe.types import GenParams, Job
    from focusclip.pipeline.describe.openai_api import OpenAIBackend

    backend = OpenAIBackend("m", "http://127.0.0.1:9/v1", GenParams(concurrency=4), api_key=SECRET)
    calls = []

    async def refused(client, job, max_tokens):
        calls.append(job.image)
        raise FocusError("the server refused the API key (HTTP 401)")
    monkeypatch.setattr(backend, "_request", refused)
    anns = random_annotations(8)
    jobs = [Job(a, build_prompt(a), 0) for a in anns]
    with caplog.at_level("ERROR", logger="asyncio"), pytest.raises(FocusError, match="401"):
        backend.run(jobs, lambda *a: None)
    gc.collect()
    assert len(calls) == 4  # all four workers failed in the same step
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]

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

from focusclip.core.errors import FocusError
from focusclip.core.io import read_jsonl
from focusclip.data.records import write_annotations
from focusclip.pipeline.describe.openai_api import retry_after_seconds
from focusclip.prompts import build_prompt
from tests.conftest import console_script
from tests.pipeline.describe.test_describe import describe_flat, image_seed, random_annotations

SECRET = "sk-test-S3CRET-never-show-me"


def tag(user_prompt: str) -> str:
    return hashlib.sha256(user_prompt.encode()).hexdigest()[:12]


class ChatServer:
    """A chat-completions endpoint on 127.0.0.1. `faults` are served, in order, to the first requests:
    429 (Retry-After: 1), 500, 503, cut (200 with a truncated JSON body), short (a body shorter than its
    Content-Length, then the connection closes), drop (connection closed with no response), empty
    (a 200 with no text), 401, 404. `length_below`: finish_reason 'length' while max_tokens is smaller.
    `think`: the answer opens with this reasoning block (a reasoning model that thinks whatever it is told);
    `strict`: a 400 naming any body field other than OpenAI's own (as OpenAI and some hosts answer)."""

    def __init__(self, faults=(), delay=0.0, always=None, length_below=0, models=("test-model",), port=0,
                 think=None, strict=False):
        self.faults, self.delay, self.always, self.length_below = list(faults), delay, always, length_below
        self.think, self.strict = think, strict
        self.models = models        # what GET /v1/models lists (None: the route answers 404)
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.log: list[dict] = []   # one entry per chat request: time, prompt tag, fault, auth header, body
        self.gets: list[float] = []  # times of GET /v1/models
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.gets.append(time.monotonic())
                if server.always in ("401", "drop") or server.models is None or self.path != "/v1/models":
                    return server.respond(self, {}, server.always or "404")
                payload = json.dumps({"object": "list", "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in server.models]})
                server.send(self, 200, payload.encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    fault = server.always or (server.faults.pop(0) if server.faults else None)
                    server.log.append({"t": time.monotonic(), "tag": tag(body["messages"][-1]["content"]),
                                       "fault": fault, "auth": self.headers.get("Authorization", ""),
                                       "max_tokens": body.get("max_tokens"), "body": body})
                try:
                    time.sleep(server.delay)
                    server.respond(self, body, fault)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def respond(self, h, body, fault):
        if fault == "drop":
            h.close_connection = True
            return
        status = {"429": 429, "500": 500, "503": 503, "401": 401, "404": 404}.get(fault, 200)
        unknown = sorted(set(body) - {"model", "messages", "seed", "temperature", "top_p", "max_tokens",
                                      "max_completion_tokens"}) if self.strict else []
        if unknown:
            payload = json.dumps({"error": {"message": f"Unrecognized request argument supplied: {unknown[0]}",
                                            "type": "invalid_request_error", "code": None}}).encode()
            return self.send(h, 400, payload)
        if status != 200:
            payload = json.dumps({"error": {"message": f"injected {fault}", "type": "x", "code": status}}).encode()
            return self.send(h, status, payload, {"Retry-After": "1"} if status == 429 else {})
        text = "" if fault == "empty" else f"There is one person in the image. [{tag(body['messages'][-1]['content'])}]"
        if self.think is not None and text:
            text = self.think + text
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        finish = "length" if limit < self.length_below else "stop"
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
          "timeout_s": 5.0, **kw}
    return describe_flat(anns, out, **kw)


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
    assert len(server.gets) == 1 and not server.log  # refused at the model list: not one chat request


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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_starts_late_is_waited_for_then_used(server_factory, tmp_path):
    # As after `vllm serve … &`: describe starts first, the server comes up 3 s later on its port.
    port = _free_port()
    anns = random_annotations(4)
    ann, out = tmp_path / "a.jsonl", tmp_path / "o.jsonl"
    write_annotations(ann, anns)
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    cmd = [console_script("focus-data"), "describe", str(ann), "-o", str(out), "--backend", "openai",
           "--model", "test-model", "--base-url", f"http://127.0.0.1:{port}/v1", "--server-wait", "30"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    assert proc.poll() is None and not out.exists()   # still waiting, and nothing written yet
    server = server_factory(port=port)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "waiting for the server at" in err and "Traceback" not in err
    assert {r["image"] for r in read_jsonl(out)} == {a.image for a in anns}
    assert len(server.gets) == 1 and server.gets[0] - started < 2.5   # polled about every second
    assert len(server.log) == 4 and min(e["t"] for e in server.log) > server.gets[0]
    assert started - t0 >= 3


def test_a_model_the_server_does_not_list_stops_before_any_request(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = server_factory(models=("Qwen/Qwen2.5-7B-Instruct", "other"))
    out = tmp_path / "o.jsonl"
    with pytest.raises(FocusError, match=r"does not serve model 'test-model' \(it lists: Qwen/Qwen2.5-7B-Instruct, "
                                         r"other\)"):
        describe(random_annotations(3), out, server)
    assert not server.log and not out.exists() and not out.with_suffix(".report.json").exists()
    # Ollama lists 'llama3:latest' for a model asked for as 'llama3'.
    tagged = server_factory(models=("llama3:latest",))
    describe(random_annotations(2), tmp_path / "l.jsonl", tagged, model="llama3")
    assert len(tagged.log) == 2


def test_a_server_that_goes_away_stops_the_run_after_consecutive_connection_failures(server_factory, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = server_factory(delay=0.05)
    anns = random_annotations(40)
    out = tmp_path / "o.jsonl"
    answered = []

    def kill_after_five():
        while len(server.log) < 5:
            time.sleep(0.01)
        server.always = "drop"          # open connections are dropped without an answer …
        server.httpd.shutdown()         # … and new ones are refused
        server.httpd.server_close()
        answered.append(len(server.log))
    threading.Thread(target=kill_after_five, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(FocusError, match=r"lost the server: 16 connection failures in a row"):
        describe(anns, out, server, concurrency=2, max_retries=8, backoff_s=0.05)
    assert time.monotonic() - t0 < 20     # not 40 images × 8 retries with backoff
    kept = read_jsonl(out)
    assert 3 <= len(kept) <= answered[0] and len({r["image"] for r in kept}) == len(kept)


def test_reasoning_models_get_max_completion_tokens_and_no_temperature(server_factory, tmp_path, monkeypatch):
    from focusclip.pipeline.describe.openai_api import is_reasoning_model

    assert all(map(is_reasoning_model, ["o1", "o1-mini", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini",
                                        "GPT-5.1", "openai/o3"]))
    assert not any(map(is_reasoning_model, ["gpt-4o-mini", "gpt-4.1", "Qwen/Qwen2.5-7B-Instruct", "llama3",
                                            "olmo-2", "gpt-50x"]))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = server_factory(models=("o3-mini", "gpt-4o-mini"), length_below=600)
    anns = random_annotations(2)
    describe(anns, tmp_path / "r.jsonl", server, model="o3-mini", max_tokens=400, concurrency=1, temperature=0.7)
    bodies = [e["body"] for e in server.log]
    assert [b.get("max_completion_tokens") for b in bodies] == [400, 800, 400, 800]   # 'length' → doubled
    assert all("max_tokens" not in b and "temperature" not in b for b in bodies)
    assert {b["seed"] for b in bodies} == {image_seed(0, a.image) for a in anns}
    rows = read_jsonl(tmp_path / "r.jsonl")
    assert [r["params"] for r in rows] == [{"temperature": None, "max_completion_tokens": 800,
                                            "seed": image_seed(0, r["image"]), "run_seed": 0} for r in rows]
    server.log.clear()
    describe(anns[:1], tmp_path / "g.jsonl", server, model="gpt-4o-mini", max_tokens=700, temperature=0.7)
    assert {k: server.log[0]["body"].get(k) for k in ("max_tokens", "temperature", "max_completion_tokens")} == \
        {"max_tokens": 700, "temperature": 0.7, "max_completion_tokens": None}
    assert read_jsonl(tmp_path / "g.jsonl")[0]["params"] == {"temperature": 0.7, "max_tokens": 700, "run_seed": 0,
                                                             "seed": image_seed(0, anns[0].image)}


def test_a_rerun_with_nothing_left_to_do_succeeds_without_the_server(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = server_factory()
    anns, out = random_annotations(3), tmp_path / "o.jsonl"
    describe(anns, out, server)
    before = out.read_bytes()
    server.close()                                   # gone: but there is nothing left to ask it
    report = describe(anns, out, server, server_wait_s=0)
    assert report.counts["asked"] == 0 and report.counts["already_described"] == 3
    assert out.read_bytes() == before


def test_each_request_carries_its_images_seed_and_only_the_settings_the_user_set(server_factory, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = server_factory()
    anns = random_annotations(4)
    by_tag = {tag(build_prompt(a).user): a.image for a in anns}
    describe(anns, tmp_path / "d.jsonl", server, seed=5, concurrency=2)
    bodies = {by_tag[e["tag"]]: e["body"] for e in server.log}
    assert {i: b["seed"] for i, b in bodies.items()} == {a.image: image_seed(5, a.image) for a in anns}
    for b in bodies.values():   # the server's own sampling (vllm serve: the model's generation_config)
        assert "temperature" not in b and "top_p" not in b and b["max_tokens"] == 512
        assert b["chat_template_kwargs"] == {"enable_thinking": False}      # reasoning off
    rows = read_jsonl(tmp_path / "d.jsonl")
    assert all(r["params"] == {"max_tokens": 512, "seed": image_seed(5, r["image"]), "run_seed": 5} for r in rows)
    server.log.clear()
    describe(anns[:1], tmp_path / "t.jsonl", server, temperature=0.3, top_p=0.9, thinking=True)
    body = server.log[0]["body"]
    assert (body["temperature"], body["top_p"], "chat_template_kwargs" in body) == (0.3, 0.9, False)
    assert read_jsonl(tmp_path / "t.jsonl")[0]["params"] == {"max_tokens": 512, "temperature": 0.3, "top_p": 0.9,
                                                             "seed": image_seed(0, anns[0].image), "run_seed": 0}


def test_a_server_that_refuses_chat_template_kwargs_is_asked_without_them(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = server_factory(strict=True)
    anns = random_annotations(3)
    report = describe(anns, tmp_path / "s.jsonl", server, concurrency=1)
    assert report.counts["described"] == 3 and len(read_jsonl(tmp_path / "s.jsonl")) == 3
    assert ["chat_template_kwargs" in e["body"] for e in server.log] == [True, False, False, False]


def test_a_served_reasoning_block_is_removed_and_kept_apart_only_when_asked(server_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = server_factory(think="<think>\nThe facts say one person; keep it short.\n</think>\n\n")
    anns = random_annotations(2)
    describe(anns, tmp_path / "a.jsonl", server)
    describe(anns, tmp_path / "k.jsonl", server, keep_reasoning=True)
    for name, kept in (("a.jsonl", False), ("k.jsonl", True)):
        for r in read_jsonl(tmp_path / name):
            assert r["description"].startswith("There is one person in the image. [") and "think" not in r["description"]
            assert r.get("reasoning") == ("The facts say one person; keep it short." if kept else None), name
    # the template opened the block in the prompt: the answer holds only its end
    server.think = "The facts say one person.</think>"
    describe(anns[:1], tmp_path / "open.jsonl", server)
    assert read_jsonl(tmp_path / "open.jsonl")[0]["description"].startswith("There is one person in the image.")

"""`--push`: one commit with the folder's files, through intercepted huggingface_hub client calls; and a
loopback server that answers 401 (echoing the Authorization header) through the real console script.
The token never appears in any output."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi, RepoUrl

from focusclip.pipeline.publish.stage import PublishOptions, run_publish
from tests.conftest import console_script
from tests.pipeline.publish.test_publish import GPT, SHARD, TEMPLATE, make_inputs

TOKEN = "hf_TEST-token-NEVER-printed-0123456789"  # fake; dashes keep it from looking like a real token
REPO = "someone/mpii-pose-descriptions"


class FakeHub:
    """Stands in for the hub behind HfApi: records calls, holds a previous push's files."""

    def __init__(self, remote_files: list[str]):
        self.remote_files = remote_files
        self.calls: list[tuple[str, dict]] = []

    def install(self, monkeypatch) -> None:
        hub = self

        def create_repo(api, repo_id, **kw):
            hub.calls.append(("create_repo", {"repo_id": repo_id, "token": api.token, **kw}))
            return RepoUrl(f"https://huggingface.co/datasets/{repo_id}")

        def list_repo_files(api, repo_id, **kw):
            hub.calls.append(("list_repo_files", {"repo_id": repo_id, **kw}))
            return list(hub.remote_files)

        def create_commit(api, repo_id, operations, **kw):
            ops = list(operations)
            contents = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes()
                        for op in ops if isinstance(op, CommitOperationAdd)}
            deleted = [op.path_in_repo for op in ops if isinstance(op, CommitOperationDelete)]
            hub.calls.append(("create_commit", {"repo_id": repo_id, "token": api.token, "contents": contents,
                                                "deleted": deleted, **kw}))
            return CommitInfo(commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/0a1b2c",
                              commit_message=kw["commit_message"], commit_description=kw["commit_description"],
                              oid="0a1b2c")

        for name, fn in (("create_repo", create_repo), ("list_repo_files", list_repo_files),
                         ("create_commit", create_commit)):
            monkeypatch.setattr(HfApi, name, fn)


def test_push_is_one_commit_of_the_folder_and_the_token_stays_secret(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    stale = [f"{GPT}/train-00000-of-00002.parquet", f"{GPT}/train-00001-of-00002.parquet",
             "gone-config/validation-00000-of-00001.parquet"]
    hub = FakeHub([".gitattributes", "README.md", "notes/keep.txt", f"{GPT}/train-00000-of-00001.parquet", *stale])
    hub.install(monkeypatch)
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    report = run_publish(PublishOptions(inputs["annotations"], inputs["descriptions"], out, repo_id=REPO, push=True,
                                        private=True, prompts_dir=inputs["prompts"]))

    assert [name for name, _ in hub.calls] == ["create_repo", "list_repo_files", "create_commit"]
    repo = hub.calls[0][1]
    assert repo["repo_id"] == REPO and repo["repo_type"] == "dataset"
    assert repo["private"] is True and repo["exist_ok"] is True and repo["token"] == TOKEN
    commit = hub.calls[2][1]
    expected = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected.remove("report.json")                      # the local report (local paths) stays local
    assert sorted(commit["contents"]) == expected
    assert sorted(expected) == ["README.md"] + sorted(f"{c}/{SHARD.format(s, 0, 1)}" for c in (GPT, TEMPLATE)
                                                      for s in ("train", "validation"))
    for path, data in commit["contents"].items():
        assert data == (out / path).read_bytes()
    assert sorted(commit["deleted"]) == sorted(stale)   # old shards go, other files stay
    assert commit["repo_type"] == "dataset" and commit["token"] == TOKEN
    assert commit["commit_message"] == "Publish MPII Pose Descriptions: 2 config(s), 13 rows"
    assert f"`{GPT}`: train 4, validation 3" in commit["commit_description"]
    assert 'load_dataset("someone/mpii-pose-descriptions"' in commit["contents"]["README.md"].decode()

    pushed = report.extra["push"]
    assert pushed["commit"] == "0a1b2c" and pushed["files"] == 5 and pushed["repo_id"] == REPO
    assert json.loads((out / "report.json").read_text())["push"]["commit"] == "0a1b2c"
    captured = capsys.readouterr()
    seen = captured.out + captured.err + caplog.text + (out / "report.json").read_text()
    seen += "".join(data.decode(errors="replace") for data in commit["contents"].values())
    assert TOKEN not in seen


def test_push_of_an_up_to_date_folder_pushes_without_rebuilding(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    descs = {TEMPLATE: inputs["descriptions"][TEMPLATE]}
    run_publish(PublishOptions(inputs["annotations"], descs, out, repo_id=REPO))
    stamp = (out / "README.md").stat().st_mtime_ns
    hub = FakeHub([])
    hub.install(monkeypatch)
    report = run_publish(PublishOptions(inputs["annotations"], descs, out, repo_id=REPO, push=True))
    assert report.extra["up_to_date"] and (out / "README.md").stat().st_mtime_ns == stamp
    assert [name for name, _ in hub.calls].count("create_commit") == 1
    assert hub.calls[2][1]["commit_message"].endswith("1 config(s), 6 rows")


class EchoingAuthHandler(BaseHTTPRequestHandler):
    """Answers every request 401 and, like a careless proxy, echoes the credentials it was sent."""
    seen: list[str] = []

    def _reply(self):
        auth = self.headers.get("Authorization", "")
        type(self).seen.append(f"{self.command} {self.path} {auth}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"error": f"Invalid credentials in Authorization header: {auth}"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Message", f"Invalid credentials: {auth}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _reply

    def log_message(self, *args):
        pass


def test_failed_push_through_the_console_script_is_one_line_without_the_token(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingAuthHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    EchoingAuthHandler.seen = []
    env = {**os.environ, "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    try:
        done = subprocess.run([console_script("focus-data"), "publish", "--annotations", str(inputs["annotations"]),
                               "--descriptions", f"{TEMPLATE}={inputs['descriptions'][TEMPLATE]}",
                               "-o", str(tmp_path / "out"), "--repo-id", REPO, "--push"],
                              env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {REPO}: push failed") and "***" in lines[-1], lines
    assert "Traceback" not in done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert EchoingAuthHandler.seen and TOKEN in EchoingAuthHandler.seen[0]   # the token was sent, not shown
    assert (tmp_path / "out" / "README.md").is_file()   # the folder is built; only the push failed


def test_push_without_a_token_is_a_user_error(tmp_path, monkeypatch):
    from focusclip.core.errors import FocusError

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("focusclip.core.hub_repo.get_token", lambda: None)
    inputs = make_inputs(tmp_path / "in")
    with pytest.raises(FocusError, match="no Hugging Face token"):
        run_publish(PublishOptions(inputs["annotations"], {TEMPLATE: inputs["descriptions"][TEMPLATE]},
                                   tmp_path / "out", repo_id=REPO, push=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]   # checked before building anything

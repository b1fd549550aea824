"""Resumable downloads against a real HTTP server on 127.0.0.1: full, dropped and resumed (within a
run and across runs), servers that ignore ranges, changed files, checksums, web pages, 404s."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from focusclip.core.errors import FocusError
from focusclip.pipeline.download.fetch import GotWebPage, fetch, part_path
from tests.pipeline.download.download_fixtures import etag, server  # noqa: F401  (the fixture)

BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()


def test_full_download_is_exact_and_leaves_no_part(server, tmp_path):
    server.add("/a/UTKFace.tar.gz", BODY)
    got = fetch(server.url + "/a/UTKFace.tar.gz", tmp_path / "UTKFace.tar.gz", sha256=SHA)
    assert (tmp_path / "UTKFace.tar.gz").read_bytes() == BODY
    assert (got.bytes, got.sha256, got.resumed_from) == (len(BODY), SHA, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["UTKFace.tar.gz"]
    assert [r["status"] for r in server.log] == [200] and server.log[0]["range"] is None


def test_dropped_connection_is_resumed_with_range_in_the_same_run(server, tmp_path):
    server.add("/f.zip", BODY)
    server.drop_once["/f.zip"] = 120_000
    got = fetch(server.url + "/f.zip", tmp_path / "f.zip", retries=2, backoff_s=0)
    assert (tmp_path / "f.zip").read_bytes() == BODY and got.sha256 == SHA
    first, second = server.log
    assert (first["status"], first["range"]) == (200, None)
    assert (second["status"], second["range"], second["if_range"]) == (206, "bytes=120000-", etag(BODY))


def test_interrupted_run_keeps_the_part_and_the_next_run_resumes(server, tmp_path):
    server.add("/f.tar.gz", BODY)
    server.drop_once["/f.tar.gz"] = 100_000
    dest = tmp_path / "f.tar.gz"
    with pytest.raises(FocusError) as e:
        fetch(server.url + "/f.tar.gz", dest, retries=0)
    msg = str(e.value)
    assert "\n" not in msg and "100,000 bytes" in msg and "rerun the same command to resume" in msg
    assert part_path(dest).read_bytes() == BODY[:100_000] and not dest.exists()
    got = fetch(server.url + "/f.tar.gz", dest, retries=0)           # the next run
    assert dest.read_bytes() == BODY and got.resumed_from == 100_000 and got.sha256 == SHA
    assert server.log[-1]["range"] == "bytes=100000-" and server.log[-1]["status"] == 206
    assert not part_path(dest).exists()


def test_a_server_that_ignores_range_makes_it_start_over(server, tmp_path):
    server.add("/f.zip", BODY)
    server.ignore_range.add("/f.zip")
    dest = tmp_path / "f.zip"
    part_path(dest).write_bytes(b"x" * 5000)                          # not the file's first bytes
    part_path(dest).with_name("f.zip.part.json").write_text(json.dumps({"url": server.url + "/f.zip"}))
    got = fetch(server.url + "/f.zip", dest)
    assert dest.read_bytes() == BODY and got.sha256 == SHA
    assert server.log[0]["range"] == "bytes=5000-" and server.log[0]["status"] == 200


def test_a_file_changed_on_the_server_is_not_spliced(server, tmp_path):
    old, new = BODY[:200_000], os.urandom(250_000)
    dest = tmp_path / "val.csv"
    server.add("/val.csv", old)
    server.drop_once["/val.csv"] = 50_000
    with pytest.raises(FocusError):
        fetch(server.url + "/val.csv", dest, retries=0)
    server.add("/val.csv", new)                                       # the release was replaced
    fetch(server.url + "/val.csv", dest)
    assert dest.read_bytes() == new
    assert server.log[-1]["if_range"] == etag(old) and server.log[-1]["status"] == 200


def test_a_complete_part_is_finished_by_a_416(server, tmp_path):
    server.add("/f.zip", BODY)
    dest = tmp_path / "f.zip"
    part_path(dest).write_bytes(BODY)
    part_path(dest).with_name("f.zip.part.json").write_text(json.dumps({"url": server.url + "/f.zip"}))
    got = fetch(server.url + "/f.zip", dest)
    assert dest.read_bytes() == BODY and got.sha256 == SHA and server.log[0]["status"] == 416


def test_a_checksum_mismatch_removes_the_download(server, tmp_path):
    server.add("/fer2013new.csv", BODY)
    with pytest.raises(FocusError, match=f"SHA-256 {SHA} differs from the recorded {'0' * 64}"):
        fetch(server.url + "/fer2013new.csv", tmp_path / "fer2013new.csv", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_a_web_page_is_not_taken_for_the_file(server, tmp_path):
    server.add("/download?id=abc&export=download&confirm=t", b"<html>quota exceeded</html>", "text/html; charset=utf-8")
    with pytest.raises(GotWebPage):
        fetch(server.url + "/download?id=abc&export=download&confirm=t", tmp_path / "UTKFace.tar.gz")
    assert not (tmp_path / "UTKFace.tar.gz").exists()


def test_not_found_is_one_line_naming_the_url(server, tmp_path):
    with pytest.raises(FocusError) as e:
        fetch(server.url + "/nope.zip", tmp_path / "nope.zip", retries=3, backoff_s=0)
    assert str(e.value).startswith(server.url + "/nope.zip: HTTP 404") and "\n" not in str(e.value)
    assert len(server.log) == 1                                        # a 404 is not retried

"""Resumable downloads against a real HTTP server on 127.0.0.1: full, dropped and resumed (within a
run and across runs), servers that ignore ranges, changed files, checksums, web pages, 404s; hostile
servers: trickled bodies and heads (stalls), redirects to other hosts and schemes; a full disk."""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import time
import urllib.request

import pytest

from focusclip.core.errors import FocusError, user_message
from focusclip.pipeline.download import fetch as fetch_mod
from focusclip.pipeline.download.fetch import GotWebPage, fetch, part_path
from focusclip.pipeline.download.opener import _Redirects
from tests.pipeline.download.download_fixtures import etag, other_server, server  # noqa: F401  (fixtures)

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


# ----------------------------------------------------------------------------------- hostile servers
@pytest.fixture
def stall_in_a_second(monkeypatch):
    """The stall rule lowered from 1 KiB/s over 60 s to 1,000 bytes/s over 1 s."""
    monkeypatch.setattr(fetch_mod, "STALL_WINDOW_S", 1.0)
    monkeypatch.setattr(fetch_mod, "MIN_RATE", 1000)


@pytest.mark.parametrize("seconds_per_byte", [0.2, 30.0], ids=["trickling", "silent"])
def test_a_stalled_server_is_one_line_and_what_arrived_is_kept_and_resumed(server, tmp_path, stall_in_a_second,
                                                                            seconds_per_byte):
    """100,000 bytes at once, then one byte every 0.2 s (or none): a stall within about two windows,
    the bytes that came before it on disk (not lost with a 1 MiB read), and the next run resumes."""
    server.add("/UTKFace.tar.gz", BODY)
    server.trickle_once["/UTKFace.tar.gz"] = (100_000, seconds_per_byte)
    dest = tmp_path / "UTKFace.tar.gz"
    start = time.monotonic()
    with pytest.raises(FocusError) as e:
        fetch(server.url + "/UTKFace.tar.gz", dest, retries=0)
    assert time.monotonic() - start < 5
    kept = part_path(dest).read_bytes()
    assert 100_000 <= len(kept) < 100_020 and kept == BODY[:len(kept)]
    msg = str(e.value)
    assert msg.startswith(f"{server.url}/UTKFace.tar.gz: the download stalled after {len(kept):,} bytes (")
    assert ("under the minimum of 1,000 bytes/s" if seconds_per_byte < 1 else "nothing arrived in 1 s") in msg
    assert "rerun later to resume it, or use --mirror" in msg and "\n" not in msg
    got = fetch(server.url + "/UTKFace.tar.gz", dest, retries=0)          # the next run
    assert dest.read_bytes() == BODY and got.resumed_from == len(kept)
    assert server.log[-1]["range"] == f"bytes={len(kept)}-" and server.log[-1]["status"] == 206


def test_a_stall_is_retried_from_what_arrived(server, tmp_path, stall_in_a_second):
    server.add("/f.zip", BODY)
    server.trickle_once["/f.zip"] = (50_000, 30.0)
    got = fetch(server.url + "/f.zip", tmp_path / "f.zip", retries=1, backoff_s=0)
    assert got.sha256 == SHA and [r["range"] for r in server.log] == [None, "bytes=50000-"]


def test_a_server_trickling_its_head_is_a_stall(server, tmp_path, stall_in_a_second):
    server.slow_head["/f.zip"] = 0.2                       # a valid response, one byte every 0.2 s
    start = time.monotonic()
    stalled = r"/f.zip: the download stalled after 0 bytes \(no response within 1 s; 0 retries\)"
    with pytest.raises(FocusError, match=stalled):
        fetch(server.url + "/f.zip", tmp_path / "f.zip", retries=0)
    assert time.monotonic() - start < 3


def test_a_redirect_on_the_same_host_is_followed(server, tmp_path):
    server.add("/new/f.zip", BODY)
    server.redirects["/f.zip"] = server.url + "/new/f.zip"
    got = fetch(server.url + "/f.zip", tmp_path / "f.zip")
    assert got.sha256 == SHA and [r["status"] for r in server.log] == [302, 200]


def test_a_redirect_to_another_host_is_refused_unless_allowed(server, other_server, tmp_path):
    other_server.add("/f.zip", BODY)
    server.redirects["/f.zip"] = other_server.url + "/f.zip"
    with pytest.raises(FocusError) as e:
        fetch(server.url + "/f.zip", tmp_path / "f.zip", retries=3, backoff_s=0)
    assert str(e.value) == (f"{server.url}/f.zip: the server redirected to {other_server.url}/f.zip, another host, "
                            "so it was not followed (if you trust 127.0.0.2, rerun with --allow-redirect 127.0.0.2; "
                            "or download the file by hand and pass --from)")
    assert other_server.log == [] and len(server.log) == 1 and list(tmp_path.iterdir()) == []
    got = fetch(server.url + "/f.zip", tmp_path / "f.zip", allow_redirect=("127.0.0.2",))
    assert got.sha256 == SHA and len(other_server.log) == 1


@pytest.mark.parametrize("origin, target, refused", [
    ("https://a.example/f.zip", "http://a.example/f.zip", "from https to http"),
    ("https://a.example/f.zip", "ftp://a.example/f.zip", "from https to ftp"),
    ("http://a.example/f.zip", "ftp://a.example/f.zip", "from http to ftp"),
    ("https://a.example/f.zip", "https://b.example/f.zip", "another host"),
    ("http://a.example/f.zip", "https://A.example:8443/g.zip", None),     # an upgrade, and a port, on the host
    ("https://a.example/f.zip", "https://b.example/f.zip?x", None),       # b.example allowed below
])
def test_the_redirect_rule_on_a_request(origin, target, refused):
    """The handler itself (https→http also end to end, in test_download_cli with a TLS server)."""
    handler = _Redirects(origin, ("b.example",) if refused is None else ())
    fp = io.BytesIO(b"the redirect's body")
    if refused:
        with pytest.raises(FocusError, match=refused):
            handler.redirect_request(urllib.request.Request(origin), fp, 302, "Found", {}, target)
    else:
        assert handler.redirect_request(urllib.request.Request(origin), fp, 302, "Found", {}, target).full_url == target
    assert fp.closed                                       # the body is never read to its end


def test_a_full_disk_while_downloading_names_the_file(server, tmp_path, monkeypatch):
    server.add("/f.zip", BODY)

    class FullDisk(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch_mod, "open", lambda path, mode: FullDisk(path, mode.replace("b", "")), raising=False)
    with pytest.raises(OSError) as e:
        fetch(server.url + "/f.zip", tmp_path / "f.zip")
    assert user_message(e.value) == (f"{tmp_path / 'f.zip.part'}: no space left on the device "
                                     "(free some space or choose an output on another disk)")

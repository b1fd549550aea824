"""`focus-data download` through the real console script: the real catalog, a loopback mirror
(--mirror or FOCUSCLIP_MIRROR), one `error:` line and exit 1 for bad input and for every hostile
server or archive (a stall, a redirect off the host or to http, a bomb, a special file), and for a
full disk; never a traceback."""
from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import tarfile

import pytest

from focusclip.eval.readers import read_for_task
from focusclip.eval.readers.people import UTK_RACES
from focusclip.eval.tasks import all_tasks
from focusclip.pipeline.download import CATALOG
from tests.conftest import console_script
from tests.pipeline.download import download_releases as rel
from tests.pipeline.download.download_fixtures import (  # noqa: F401  (the fixtures: server, other_server, …)
    lowered_limits, other_server, part_url, server, targz_of, tls_cert, tls_server, url_key, zeros_zip, zip_with)

TASKS = {t.id: t for t in all_tasks()}


def focus_data(*args, mirror: str | None = None, env: dict[str, str] | None = None, prefix: tuple = ()):
    """`focus-data download ARGS`; `env` adds variables, `prefix` runs it under another command."""
    env = {**{k: v for k, v in os.environ.items() if k != "FOCUSCLIP_MIRROR"}, **(env or {})}
    if mirror:
        env["FOCUSCLIP_MIRROR"] = mirror
    return subprocess.run([*prefix, console_script("focus-data"), "download", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)


def one_error_line(r) -> str:
    """Exit 1 and exactly one `error:` line, the last one (progress bars may come before it)."""
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr
    return errors[0]


def test_list_shows_every_dataset_with_size_licence_and_access():
    r = focus_data("--list")
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("\n\n")[0].splitlines()
    assert [row.split()[0] for row in table[1:]] == list(CATALOG)
    rows = {row.split()[0]: row for row in table[1:]}
    assert "request form" in rows["emotic"] and "Kaggle account" in rows["fer2013"]
    assert "public, no account" in rows["stanford40"] and "CC BY 4.0" in rows["fairface"]
    assert "12.9 GB" in rows["mpii"] and "stanford40-action" in rows["stanford40"]
    assert "https://forms.gle/aCLLPAiqP8WeVChbA" in r.stdout and "Stanford40_JPEGImages.zip" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["coco", "--root", "R"], ["unknown dataset 'coco'", "stanford40", "or all"]),
    (["stanford40"], ["--root is required"]),
    (["--root", "R"], ["no dataset named", "or all"]),
    (["emotic", "utkface", "--root", "R", "--from", "pyproject.toml"], ["--from needs exactly one dataset name"]),
    (["utkface", "--root", "R", "--mirror", "ftp://x"], ["'ftp://x' is not an http(s)://host[:port][/path] URL"]),
    (["emotic", "--root", "R", "--from", "no/such/file.zip"], ["no/such/file.zip: file not found"]),
])
def test_bad_input_is_one_error_line(tmp_path, args, words):
    args = [str(tmp_path / a) if a == "R" else a for a in args]
    line = one_error_line(focus_data(*args))
    assert all(w in line for w in words), line


def test_stanford40_from_the_env_mirror_then_the_eval_reader_reads_it(server, tmp_path):
    release = rel.stanford40(tmp_path / "src")
    for url, body in release.served.items():
        server.add(url, body)
    root = tmp_path / "root"
    r = focus_data("stanford40", "--root", root, mirror=server.url)
    assert r.returncode == 0, r.stderr
    assert f"files laid out in {root / 'stanford40'}" in r.stdout
    assert f"next: focus-eval CHECKPOINT --data-root {root} --task stanford40-action" in r.stdout
    # the real entry expects the full release: third-party counts warn, they do not fail
    assert ("warning: stanford40: expected 9,532 files in JPEGImages/*.jpg (per the dataset page's 9,532 images, "
            "not checked against the archives), found 6") in r.stderr
    split = read_for_task(TASKS["stanford40-action"], root)
    assert len(split.samples) == release.samples["stanford40-action"] and len(split.classes) == 40
    again = focus_data("stanford40", "--root", root, mirror=server.url)
    assert again.returncode == 0 and "already complete" in again.stdout and len(server.log) == 3


def test_utkface_with_the_mirror_option(server, tmp_path):
    want = rel.fx.write_utkface(tmp_path / "src")             # (name, age, race), the malformed names apart
    server.add(part_url(CATALOG["utkface"], "UTKFace.tar.gz"), targz_of(tmp_path / "src" / "utkface"))
    r = focus_data("utkface", "--root", tmp_path / "root", "--mirror", server.url + "/")
    assert r.returncode == 0, r.stderr
    split = read_for_task(TASKS["utkface-race"], tmp_path / "root")
    assert sorted((s.key, s.labels[0]) for s in split.samples) == [(n, UTK_RACES[race]) for n, _, race in want]
    assert dict(split.skipped) == {"malformed file name": 4}


def test_a_corrupt_download_is_one_error_line_and_leaves_no_folder(server, tmp_path):
    release = rel.utkface(tmp_path / "src")
    [(url, body)] = release.served.items()
    server.add(url, body[:-500])
    line = one_error_line(focus_data("utkface", "--root", tmp_path / "root", mirror=server.url))
    assert f"UTKFace.tar.gz from {server.url}/download?id=" in line and "the archive is damaged or truncated" in line
    assert not (tmp_path / "root" / "utkface").exists()


def test_emotic_dropped_in_then_a_wrong_file_refused(tmp_path):
    release = rel.emotic(tmp_path / "src")
    (tmp_path / "drop").mkdir()
    for name, body in release.dropped.items():
        (tmp_path / "drop" / name).write_bytes(body)
    root = tmp_path / "root"
    r = focus_data("emotic", "--root", root)
    assert r.returncode == 0 and "emotic: needs a manual download (a request form)" in r.stdout
    r = focus_data("emotic", "--root", root, "--from", tmp_path / "drop" / "emotic.zip",
                   "--from", tmp_path / "drop" / "Annotations.zip")
    assert r.returncode == 0, r.stderr
    assert len(read_for_task(TASKS["emotic-emotion"], root).samples) == release.samples["emotic-emotion"]
    line = one_error_line(focus_data("lagenda", "--root", root, "--from", tmp_path / "drop" / "Annotations.zip"))
    assert "not a LAGENDA file" in line and "lag_benchmark/*.jpg" in line


def test_all_downloads_what_it_can_reports_each_failure_and_lists_the_manual_ones(server, tmp_path):
    release = rel.utkface(tmp_path / "src")
    [(url, body)] = release.served.items()
    server.add(url, body)                                     # the mirror has only UTKFace
    r = focus_data("all", "--root", tmp_path / "root", "--retries", "0", mirror=server.url)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert [e.split(":")[1].strip() for e in errors] == ["mpii", "stanford40", "kinetics400", "ferplus", "fairface",
                                                          "lagenda"]
    assert all("HTTP 404" in e for e in errors)
    assert "utkface: " in r.stdout and "files laid out" in r.stdout
    assert "emotic: needs a manual download" in r.stdout and "fer2013: needs a manual download (an account)" in r.stdout


# ----------------------------------------------------------------------------------- hostile servers and archives
def test_a_trickling_server_is_one_error_line_and_the_next_run_resumes(server, tmp_path):
    """A third of the file, then a byte every 0.25 s: a stall (the rule lowered to 1,000 bytes/s over 1 s)."""
    release = rel.utkface(tmp_path / "src")
    [(url, body)] = release.served.items()
    server.add(url, body)
    server.trickle_once[url_key(url)] = (len(body) // 3, 0.25)
    root = tmp_path / "root"
    env = lowered_limits(tmp_path / "site", **{"fetch.STALL_WINDOW_S": 1.0, "fetch.MIN_RATE": 1000})
    line = one_error_line(focus_data("utkface", "--root", root, "--retries", "0", mirror=server.url, env=env))
    part = root / ".downloads" / "utkface" / "UTKFace.tar.gz.part"
    got = part.stat().st_size
    assert len(body) // 3 <= got < len(body) // 3 + 20
    assert line.startswith(f"error: {server.url}/download?id=") and f"the download stalled after {got:,} bytes" in line
    assert "rerun later to resume it, or use --mirror" in line
    r = focus_data("utkface", "--root", root, mirror=server.url)
    assert r.returncode == 0 and server.log[-1]["range"] == f"bytes={got}-", r.stderr


def test_a_redirect_to_another_host_is_one_error_line_unless_allowed(server, other_server, tmp_path):
    release = rel.utkface(tmp_path / "src")
    [(url, body)] = release.served.items()
    key = url_key(url)
    other_server.add(key, body)
    server.redirects[key] = other_server.url + key
    root = tmp_path / "root"
    line = one_error_line(focus_data("utkface", "--root", root, mirror=server.url))
    assert line == (f"error: {server.url}{key}: the server redirected to {other_server.url}{key}, another host, so "
                    "it was not followed (if you trust 127.0.0.2, rerun with --allow-redirect 127.0.0.2; or download "
                    "the file by hand and pass --from)")
    assert other_server.log == [] and list(root.iterdir()) == []
    r = focus_data("utkface", "--root", root, "--allow-redirect", "127.0.0.2", mirror=server.url)
    assert r.returncode == 0 and "files laid out" in r.stdout, r.stderr


def test_a_redirect_from_https_to_http_is_one_error_line(tls_server, server, tmp_path):
    """A TLS mirror on 127.0.0.1 (its certificate trusted through SSL_CERT_FILE) redirecting to http on
    the same host: refused even though the host is the same."""
    release = rel.utkface(tmp_path / "src")
    [(url, body)] = release.served.items()
    key = url_key(url)
    server.add(key, body)
    tls_server.redirects[key] = server.url + key
    line = one_error_line(focus_data("utkface", "--root", tmp_path / "root", mirror=tls_server.url))
    assert line == (f"error: {tls_server.url}{key}: the server redirected to {server.url}{key}; a download is never "
                    "moved from https to http, so it was not followed (use an https source or --mirror, or download "
                    "the file by hand and pass --from)")
    assert [r["status"] for r in tls_server.log] == [302] and server.log == []


def test_a_zip_bomb_is_one_error_line_and_a_rerun_refuses_it_again(server, tmp_path):
    """3 MiB of zeros in a 3 kB zip, the ratio checked past 1 MiB (lowered from 64 MiB)."""
    release = rel.stanford40(tmp_path / "src")
    for url, body in release.served.items():
        server.add(url, zeros_zip(3 * 2**20) if url.endswith("JPEGImages.zip") else body)
    root = tmp_path / "root"
    env = lowered_limits(tmp_path / "site", **{"unpack.RATIO_FLOOR": 2**20})
    for run in (1, 2):
        line = one_error_line(focus_data("stanford40", "--root", root, mirror=server.url, env=env))
        source = f"{server.url}/Datasets/Stanford40_JPEGImages.zip"
        assert line.startswith(f"error: Stanford40_JPEGImages.zip from {source}: the archive unpacks to more than "
                               "200 times its own ")
        assert "(a decompression bomb); it is refused and nothing of it was kept" in line
        assert list(root.iterdir()) == [] and len(server.log) == run     # no state: fetched again, no cache unpacked


def test_a_zip_member_with_a_device_mode_is_one_error_line(server, tmp_path):
    release = rel.stanford40(tmp_path / "src")
    for url, body in release.served.items():
        server.add(url, body)
    url = next(u for u in release.served if u.endswith("JPEGImages.zip"))
    server.add(url, zip_with([("JPEGImages/a.jpg", b"1", 0o100644), ("JPEGImages/null", b"", 0o020666)]))
    root = tmp_path / "root"
    line = one_error_line(focus_data("stanford40", "--root", root, mirror=server.url))
    assert ("member 'JPEGImages/null' is a device, FIFO or other special file; the archive is refused and nothing "
            "was unpacked") in line
    assert list(root.iterdir()) == []


def test_a_full_disk_is_one_error_line_naming_the_file(server, tmp_path):
    """A 2 MiB tmpfs as --root (mounted in a user and mount namespace of its own): the 1.5 MB archive
    fits, unpacking it beside it does not."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-Urm", "true"], capture_output=True).returncode:
        pytest.skip("no user namespaces here to mount a small tmpfs in")
    rng = random.Random(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i in range(6):
            data = rng.randbytes(250_000)                     # incompressible
            info = tarfile.TarInfo(f"UTKFace/{20 + i}_0_0_2017.jpg.chip.jpg")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    server.add(part_url(CATALOG["utkface"], "UTKFace.tar.gz"), buf.getvalue())
    root = tmp_path / "root"
    root.mkdir()
    mount = ("unshare", "-Urm", "sh", "-c", 'mount -t tmpfs -o size=2m tmpfs "$0" && exec "$@"', str(root))
    line = one_error_line(focus_data("utkface", "--root", root, mirror=server.url, prefix=mount))
    unpacked = f"{root}/.downloads/utkface/unpack-UTKFace.tar.gz/UTKFace/"
    assert line.startswith(f"error: {unpacked}") and line.endswith(
        ".jpg.chip.jpg: no space left on the device (free some space or choose an output on another disk)"), line

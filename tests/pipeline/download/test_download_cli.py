"""`focus-data download` through the real console script: the real catalog, a loopback mirror
(--mirror or FOCUSCLIP_MIRROR), one `error:` line and exit 1 for bad input, never a traceback."""
from __future__ import annotations

import os
import subprocess

import pytest

from focusclip.eval.readers import read_for_task
from focusclip.eval.readers.people import UTK_RACES
from focusclip.eval.tasks import all_tasks
from focusclip.pipeline.download import CATALOG
from tests.conftest import console_script
from tests.pipeline.download import download_releases as rel
from tests.pipeline.download.download_fixtures import part_url, server, targz_of  # noqa: F401  (server: the fixture)

TASKS = {t.id: t for t in all_tasks()}


def focus_data(*args, mirror: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "FOCUSCLIP_MIRROR"}
    if mirror:
        env["FOCUSCLIP_MIRROR"] = mirror
    return subprocess.run([console_script("focus-data"), "download", *map(str, args)], env=env,
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

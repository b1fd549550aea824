"""`run_download` against a loopback mirror serving tiny releases in the real archive layouts: every
dataset ends up where its eval reader finds it; reruns skip; bad archives, counts and checksums are
refused with one line and nothing in the final folder, nor any state left behind; manual datasets take
dropped-in files."""
from __future__ import annotations

import hashlib
import json

import pytest

from focusclip.eval.readers import MissingData, read_for_task
from focusclip.eval.tasks import all_tasks
from focusclip.pipeline.download import CATALOG, DownloadOptions, resolve_names, run_download
from focusclip.pipeline.download.stage import MARKER, WORK
from focusclip.pipeline.convert import run_convert_mpii
from tests.pipeline.download import download_releases as rel
from focusclip.pipeline.download import unpack as unpack_mod
from tests.pipeline.download.download_fixtures import (other_server, retarget, server, targz_of, url_key,  # noqa: F401
                                                       zeros_zip, zip_of, zip_with)

TASKS = {t.id: t for t in all_tasks()}


def download(server, root, *datasets, names=None, **opts):
    catalog = {**CATALOG, **{d.name: d for d in datasets}}
    names = names or [d.name for d in datasets]
    return run_download(names, DownloadOptions(root=root, mirror=server.url, backoff_s=0, **opts), catalog)


def serve(server, release):
    for url, body in release.served.items():
        server.add(url, body)
    return release


def drop(tmp_path, release) -> tuple:
    (tmp_path / "drop").mkdir(exist_ok=True)
    for name, body in release.dropped.items():
        (tmp_path / "drop" / name).write_bytes(body)
    return tuple(tmp_path / "drop" / name for name in release.dropped)


def samples(task_id, root) -> int:
    return len(read_for_task(TASKS[task_id], root).samples)


@pytest.mark.parametrize("name", ["stanford40", "kinetics400", "fairface", "utkface", "lagenda"])
def test_a_public_dataset_lands_where_its_eval_reader_reads_it(server, tmp_path, name):
    src, root = tmp_path / "src", tmp_path / "root"
    release = serve(server, getattr(rel, name)(src))
    [out] = download(server, root, release.ds)
    assert (out.state, out.warnings) == ("complete", []), out.message
    for task_id, n in release.samples.items():
        assert samples(task_id, root) == n, task_id
    marker = json.loads((root / release.ds.folder / MARKER).read_text())
    assert marker["complete"] and marker["warnings"] == []
    for url, body in release.served.items():
        fetched = next(f for f in marker["fetched"].values() if f["source"].endswith(url.split("/", 3)[-1]))
        assert fetched["sha256"] == hashlib.sha256(body).hexdigest() and fetched["bytes"] == len(body)
    assert not (root / WORK).exists()                       # archives and staging are gone
    assert all(task in " ".join(out.next) for task in release.samples)


def test_kinetics_is_fetched_from_its_url_list_through_the_mirror_and_frames_come_next(server, tmp_path):
    release = serve(server, rel.kinetics400(tmp_path / "src"))
    [out] = download(server, tmp_path / "root", release.ds)
    # the listing is read first; its real S3 URLs are rewritten to the mirror too
    assert [r["key"] for r in server.log] == [
        "/kinetics/400/val/k400_val_path.txt", "/kinetics/400/annotations/val.csv",
        "/kinetics/400/val/part_0.tar.gz", "/kinetics/400/val/part_1.tar.gz"]
    split = read_for_task(TASKS["kinetics400-action"], tmp_path / "root")
    assert sorted(s.key for s in split.samples) == sorted(f"{v}_{s:06d}_{e:06d}" for _, v, s, e in rel.KINETICS[:3])
    assert all(s.image.video for s in split.samples) and dict(split.skipped) == {"no middle frame and no clip": 1}
    assert out.next[0] == f"focus-data frames --data-root {tmp_path / 'root'}"


def test_kinetics_clips_arranged_in_class_folders_by_hand_are_adopted(server, tmp_path):
    root = tmp_path / "root"
    rel.kinetics400(tmp_path / "src")
    (root / "kinetics400" / "videos").mkdir(parents=True)
    (tmp_path / "src" / "kinetics400" / "annotations").rename(root / "kinetics400" / "annotations")
    (tmp_path / "src" / "kinetics400" / "part_0").rename(root / "kinetics400" / "videos" / "val")   # 2 clips
    (tmp_path / "src" / "kinetics400" / "part_1").rename(root / "kinetics400" / "videos" / "val" / "abseiling")
    entry = retarget(CATALOG["kinetics400"], {"val.csv": len(rel.KINETICS)})   # the clip count stays real
    [out] = download(server, root, entry)
    assert out.state == "adopted" and server.log == []
    assert out.warnings == ["expected 19,881 files in videos/val/**/*.mp4 (per cvdfoundation/kinetics-dataset "
                            "arrange_by_classes.py, the clips still online), found 3"]
    assert len(read_for_task(TASKS["kinetics400-action"], root).samples) == 3


def test_mpii_lands_where_convert_reads_it(server, tmp_path):
    release = serve(server, rel.mpii(tmp_path / "src"))
    root = tmp_path / "root"
    [out] = download(server, root, release.ds)
    assert out.state == "complete", out.message
    assert sorted(p.name for p in (root / "mpii").iterdir()) == ["download.json", "images",
                                                                 "mpii_human_pose_v1_u12_1.mat"]
    report = run_convert_mpii(root / "mpii" / "mpii_human_pose_v1_u12_1.mat", tmp_path / "a.jsonl",
                              images=root / "mpii" / "images").to_dict()
    assert report["counts"]["images"] == 6
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 6
    assert out.next == [f"focus-data convert mpii {root}/mpii/mpii_human_pose_v1_u12_1.mat -o annotations.jsonl "
                        f"--images {root}/mpii/images"]


def test_manual_datasets_print_where_to_get_them_then_take_the_dropped_files(server, tmp_path):
    release = rel.emotic(tmp_path / "src")
    root = tmp_path / "root"
    images_zip, annotations_zip = drop(tmp_path, release)
    [out] = download(server, root, release.ds)
    assert out.state == "pending" and "https://forms.gle/aCLLPAiqP8WeVChbA" in out.message
    assert f"focus-data download emotic --root {root} --from FILE" in out.message
    [out] = download(server, root, release.ds, sources=(images_zip,))
    assert out.state == "pending" and "still needed: Annotations.mat" in out.message
    assert not (root / "emotic").exists()
    [out] = download(server, root, release.ds, sources=(annotations_zip,))
    assert out.state == "complete", out.message
    for task_id, n in release.samples.items():
        assert samples(task_id, root) == n
    assert server.log == []                                   # nothing was fetched for a form dataset


def test_one_dropped_archive_holding_every_part_is_placed_in_one_run(server, tmp_path):
    """A repackaged copy (as on Kaggle): emotic/<db>/images/ and Annotations/ in one zip, under a top folder."""
    release = rel.emotic(tmp_path / "src")
    bundle = tmp_path / "archive.zip"
    bundle.write_bytes(zip_of(tmp_path / "src" / "emotic", "EMOTIC dataset/"))
    [out] = download(server, tmp_path / "root", release.ds, sources=(bundle,))
    assert out.state == "complete", out.message
    assert samples("emotic-age", tmp_path / "root") == release.samples["emotic-age"]


def test_fer2013_from_kaggle_then_ferplus_from_github(server, tmp_path):
    src, root = tmp_path / "src", tmp_path / "root"
    fer = rel.fer2013(src)
    [out] = download(server, root, fer.ds, sources=drop(tmp_path, fer))
    assert out.state == "complete", out.message
    assert sorted(p.name for p in (root / "fer2013").iterdir()) == ["download.json", "fer2013.csv"]
    plus = serve(server, rel.ferplus(src))
    [out] = download(server, root, plus.ds)
    assert out.state == "complete" and not any("download fer2013" in n for n in out.next)
    for task_id, n in fer.samples.items():
        assert samples(task_id, root) == n


def test_ferplus_without_fer2013_says_to_fetch_it_first(server, tmp_path):
    plus = serve(server, rel.ferplus(tmp_path / "src"))
    root = tmp_path / "root"
    [out] = download(server, root, plus.ds)
    assert out.state == "complete"
    assert out.next[0].startswith(f"focus-data download fer2013 --root {root}")
    with pytest.raises(MissingData):                          # the reader needs FER2013's pixels too
        read_for_task(TASKS["ferplus-emotion"], root)


def test_a_rerun_skips_what_is_complete_and_force_downloads_again(server, tmp_path):
    release = serve(server, rel.utkface(tmp_path / "src"))
    root = tmp_path / "root"
    download(server, root, release.ds)
    (root / "utkface" / "UTKFace" / "stray.jpg").write_bytes(b"x")
    [out] = download(server, root, release.ds)
    assert out.state == "skipped" and "already complete" in out.message and len(server.log) == 1
    [out] = download(server, root, release.ds, force=True)
    assert out.state == "complete" and len(server.log) == 2
    assert not (root / "utkface" / "UTKFace" / "stray.jpg").exists()


def test_a_wrong_count_is_rejected_in_one_line_and_the_rest_is_kept(server, tmp_path):
    """The real FairFace entry: the label file must have 10,954 rows (MiVOLO README)."""
    release = serve(server, rel.fairface(tmp_path / "src"))
    root = tmp_path / "root"
    [out] = download(server, root, CATALOG["fairface"])
    assert out.state == "failed" and "\n" not in out.message
    assert ("expected 10,954 rows in fairface_label_val.csv (per MiVOLO README: 10,954 val images), "
            "found 5") in out.message
    assert not (root / "fairface").exists()
    assert not (root / WORK / "fairface" / "fairface_label_val.csv").exists()   # the bad file is not kept
    download(server, root, CATALOG["fairface"])
    assert [len(server.hits(u)) for u in release.served] == [1, 2]              # the placed zip is not fetched again


def test_a_damaged_archive_is_rejected_then_fetched_again(server, tmp_path):
    release = rel.utkface(tmp_path / "src")
    [(url, body)] = release.served.items()
    server.add(url, body[: len(body) // 2])
    root = tmp_path / "root"
    [out] = download(server, root, release.ds)
    assert out.state == "failed" and "the archive is damaged or truncated" in out.message
    assert out.message.startswith(f"UTKFace.tar.gz from {server.url}/download?id=0BxYys69jI14kYVM3aVhKS1VhRUk")
    assert not (root / "utkface").exists() and not list((root / WORK / "utkface").glob("UTKFace.tar.gz*"))
    server.add(url, body)
    [out] = download(server, root, release.ds)
    assert out.state == "complete" and samples("utkface-age", root) == release.samples["utkface-age"]


def test_a_malicious_archive_is_refused_and_nothing_escapes(server, tmp_path):
    release = serve(server, rel.stanford40(tmp_path / "src"))
    url = next(u for u in release.served if u.endswith("Stanford40_JPEGImages.zip"))
    server.add(url, zip_with([("JPEGImages/ok.jpg", b"ok", 0o100644),
                              ("JPEGImages/../../../x.jpg", b"evil", 0o100644)]))
    root = tmp_path / "root"
    [out] = download(server, root, release.ds)
    assert out.state == "failed" and "member 'JPEGImages/../../../x.jpg' climbs out" in out.message
    assert not (root / "stanford40").exists()
    assert list(tmp_path.rglob("x.jpg")) == [] and list(tmp_path.rglob("ok.jpg")) == []


def test_an_interrupted_download_is_resumed_by_the_next_run(server, tmp_path):
    release = serve(server, rel.utkface(tmp_path / "src"))
    [(url, body)] = release.served.items()
    server.drop_once[url_key(url)] = len(body) // 3
    root = tmp_path / "root"
    [out] = download(server, root, release.ds, retries=0)
    assert out.state == "failed" and "rerun the same command to resume" in out.message
    assert (root / WORK / "utkface" / "UTKFace.tar.gz.part").stat().st_size == len(body) // 3
    [out] = download(server, root, release.ds, retries=0)
    assert out.state == "complete"
    assert server.log[-1]["range"] == f"bytes={len(body) // 3}-" and server.log[-1]["status"] == 206


def test_a_web_page_points_to_the_manual_route_which_then_works(server, tmp_path):
    release = rel.fairface(tmp_path / "src")
    zip_url, csv_url = release.served
    server.add(zip_url, b"<html>Google Drive - quota exceeded</html>", "text/html")
    server.add(csv_url, release.served[csv_url], "text/csv")
    root = tmp_path / "root"
    [out] = download(server, root, release.ds)
    assert out.state == "failed" and "answered with a web page" in out.message
    assert f"focus-data download fairface --root {root} --from fairface-img-margin025-trainval.zip" in out.message
    (tmp_path / "fairface-img-margin025-trainval.zip").write_bytes(release.served[zip_url])
    [out] = download(server, root, release.ds, sources=(tmp_path / "fairface-img-margin025-trainval.zip",))
    assert out.state == "complete" and samples("fairface-race", root) == release.samples["fairface-race"]


def test_a_wrong_dropped_file_is_refused_in_one_line(server, tmp_path):
    wrong = tmp_path / "UTKFace.tar.gz"
    rel.utkface(tmp_path / "src")
    wrong.write_bytes(targz_of(tmp_path / "src" / "utkface"))
    [out] = download(server, tmp_path / "root", CATALOG["emotic"], sources=(wrong,))
    assert out.state == "failed" and "\n" not in out.message
    assert out.message.startswith(f"{wrong}: not a EMOTIC file: it holds none of what is still needed")
    assert not (tmp_path / "root" / WORK / "emotic" / "staging").exists()


def test_checksums_published_or_recorded_for_the_release_refuse_other_files(server, tmp_path):
    """The real entries: torchvision's MD5 of fer2013.csv, our recorded SHA-256 of fer2013new.csv."""
    fer = rel.fer2013(tmp_path / "src")
    [out] = download(server, tmp_path / "root", CATALOG["fer2013"], sources=drop(tmp_path, fer))
    assert out.state == "failed" and "differs from the published f8428a1edbd21e88f42c73edd2a14f95" in out.message
    assert "expected 35,887 rows in fer2013.csv" in out.message and "found 10" in out.message
    serve(server, rel.ferplus(tmp_path / "src"))
    [out] = download(server, tmp_path / "root", CATALOG["ferplus"])
    assert out.state == "failed" and f"differs from the recorded {CATALOG['ferplus'].parts[0].sha256}" in out.message
    assert not (tmp_path / "root" / "fer2013").exists() and not (tmp_path / "root" / "ferplus").exists()


def test_a_folder_laid_out_by_hand_is_checked_and_adopted(server, tmp_path):
    root = tmp_path / "root"
    rel.fx.write_utkface(root)
    [out] = download(server, root, CATALOG["utkface"])
    assert out.state == "adopted" and server.log == []
    assert out.warnings == ["expected 23,708 files in UTKFace/* (per jgabriellima/race_gender_recognition "
                            "README: 12,391 male + 11,317 female), found 14"]
    assert json.loads((root / "utkface" / MARKER).read_text())["how"] == "found in place"
    rel.fx.write_stanford40(root)
    (root / "stanford40" / "XMLAnnotations").rename(root / "stanford40" / "xml")
    [out] = download(server, root, CATALOG["stanford40"])
    assert out.state == "failed"
    assert "exists but is not a complete Stanford 40 Actions (no XMLAnnotations/*.xml)" in out.message


def test_keep_archives_keeps_them_beside_the_dataset(server, tmp_path):
    release = serve(server, rel.utkface(tmp_path / "src"))
    download(server, tmp_path / "root", release.ds, keep_archives=True)
    kept = tmp_path / "root" / WORK / "utkface" / "UTKFace.tar.gz"
    assert kept.read_bytes() == next(iter(release.served.values()))


def test_names_all_and_unknown():
    assert resolve_names(["all"]) == list(CATALOG) and len(CATALOG) == 9
    assert resolve_names(["utkface", "all"])[0] == "utkface"
    eval_datasets = {t.dataset for t in all_tasks()}
    assert eval_datasets == set(CATALOG) - {"mpii"}            # every eval dataset has an entry
    assert {t for d in CATALOG.values() for t in d.tasks} == set(TASKS)
    with pytest.raises(Exception, match="unknown dataset 'coco'"):
        resolve_names(["coco"])


def test_a_refused_archive_leaves_no_state_and_a_rerun_fetches_and_refuses_it_again(server, tmp_path, monkeypatch):
    """A bomb (lowered limits): refused in one line; no archive, state.json or work folder is left, so
    the rerun cannot unpack a cached copy: it fetches the file again and refuses it again."""
    monkeypatch.setattr(unpack_mod, "RATIO_FLOOR", 2**20)
    release = serve(server, rel.stanford40(tmp_path / "src"))
    url = next(u for u in release.served if u.endswith("Stanford40_JPEGImages.zip"))
    server.add(url, zeros_zip(3 * 2**20))
    root = tmp_path / "root"
    for run in (1, 2):
        [out] = download(server, root, release.ds)
        assert out.state == "failed" and "\n" not in out.message
        assert "(a decompression bomb); it is refused" in out.message
        assert sorted(p.name for p in root.iterdir()) == [] and len(server.hits(url)) == run


def test_a_refusal_after_a_placed_part_keeps_that_part_and_forgets_the_refused_one(server, tmp_path):
    release = serve(server, rel.stanford40(tmp_path / "src"))
    url = next(u for u in release.served if u.endswith("Stanford40_XMLAnnotations.zip"))
    server.add(url, zip_with([("XMLAnnotations/a.xml", b"<a/>", 0o100644), ("XMLAnnotations/p", b"", 0o010644)]))
    root = tmp_path / "root"
    [out] = download(server, root, release.ds)
    assert out.state == "failed" and "member 'XMLAnnotations/p' is a device, FIFO or other special file" in out.message
    work = root / WORK / "stanford40"
    state = json.loads((work / "state.json").read_text())
    assert list(state["placed"]) == list(state["fetched"]) == ["Stanford40_JPEGImages.zip"]
    assert sorted(p.name for p in work.iterdir()) == ["staging", "state.json"]


def test_a_redirect_to_another_host_is_refused_then_allowed(server, other_server, tmp_path):
    release = rel.utkface(tmp_path / "src")
    [(url, body)] = release.served.items()
    other_server.add(url, body)
    server.redirects[url_key(url)] = other_server.url + url_key(url)
    root = tmp_path / "root"
    [out] = download(server, root, release.ds)
    assert out.state == "failed" and f"redirected to {other_server.url}/download?id=" in out.message
    assert "--allow-redirect 127.0.0.2" in out.message and other_server.log == [] and list(root.iterdir()) == []
    [out] = download(server, root, release.ds, allow_redirect=("127.0.0.2",))
    assert out.state == "complete" and samples("utkface-age", root) == release.samples["utkface-age"]

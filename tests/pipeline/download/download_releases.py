"""Tiny releases of each dataset, packed as the real archives are (names and member layout), from the
folders tests/eval/fixtures.py writes in the official formats. Each builder returns the catalog entry
with its expected counts (and checksums) set to what the tiny release really holds, counted here with
plain globs, the files to serve (by their source URL) or to drop in with --from, and what the eval
readers must then find."""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from focusclip.data.synthetic.evalsets import STANFORD40_CLASSES
from focusclip.pipeline.download import CATALOG
from focusclip.pipeline.download.spec import Dataset
from tests.converters.mat_fixtures import write_mpii
from tests.eval import fixtures as fx
from tests.pipeline.download.download_fixtures import part_url, retarget, targz_of, zip_of


@dataclass
class Release:
    ds: Dataset
    served: dict[str, bytes] = field(default_factory=dict)      # source URL → body
    dropped: dict[str, bytes] = field(default_factory=dict)     # file name → body, for --from
    samples: dict[str, int] = field(default_factory=dict)       # focus-eval task id → samples read


def n_files(folder: Path, pattern: str = "*") -> int:
    return sum(1 for p in folder.glob(pattern) if p.is_file())


def n_rows(path: Path) -> int:
    with open(path, newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def stanford40_actions_all(src: Path) -> None:
    """The real actions.txt lists all 40 classes (the reader fixture lists four)."""
    lines = ["action_name\tnumber_of_images"] + [f"{a}\t{200 + i}" for i, a in enumerate(STANFORD40_CLASSES)]
    (src / "stanford40" / "ImageSplits" / "actions.txt").write_text("\n".join(lines) + "\n")


def stanford40(src: Path) -> Release:
    want = fx.write_stanford40(src)
    stanford40_actions_all(src)
    base, ds = src / "stanford40", CATALOG["stanford40"]
    ds = retarget(ds, {"JPEGImages/*.jpg": n_files(base / "JPEGImages"),
                       "XMLAnnotations/*.xml": n_files(base / "XMLAnnotations"),
                       "ImageSplits/test.txt": len((base / "ImageSplits" / "test.txt").read_text().split())})
    served = {part_url(ds, f"Stanford40_{d}.zip"): zip_of(base / d, f"{d}/")
              for d in ("JPEGImages", "XMLAnnotations", "ImageSplits")}
    return Release(ds, served, samples={"stanford40-action": len(want["samples"])})


def utkface(src: Path) -> Release:
    want = fx.write_utkface(src)
    folder = src / "utkface" / "UTKFace"
    ds = retarget(CATALOG["utkface"], {"UTKFace/*": n_files(folder)})
    served = {part_url(ds, "UTKFace.tar.gz"): targz_of(folder, "UTKFace/")}
    return Release(ds, served, samples={"utkface-age": len(want), "utkface-race": len(want)})


def fairface(src: Path) -> Release:
    fx.write_fairface(src)
    base = src / "fairface"
    images = base / "fairface-img-margin025-trainval"
    ds = retarget(CATALOG["fairface"], {"val/*.jpg": n_files(images / "val"), "train/*.jpg": 0,
                                        "fairface_label_val.csv": n_rows(base / "fairface_label_val.csv")})
    served = {part_url(ds, "fairface-img-margin025-trainval.zip"): zip_of(images),   # members val/1.jpg …
              part_url(ds, "fairface_label_val.csv"): (base / "fairface_label_val.csv").read_bytes()}
    n = len(fx.FAIRFACE_ROWS) - 1                                                    # val/5.jpg is absent
    return Release(ds, served, samples={"fairface-age": n, "fairface-race": n})


def lagenda(src: Path) -> Release:
    want = fx.write_lagenda(src)
    base = src / "lagenda"
    ds = retarget(CATALOG["lagenda"], {"lag_benchmark/*.jpg": n_files(base / "lag_benchmark"),
                                       "lagenda_annotation.csv": n_rows(base / "lagenda_annotation.csv")})
    served = {part_url(ds, "lagenda_benchmark_images.zip"): zip_of(base / "lag_benchmark", "lag_benchmark/"),
              part_url(ds, "lagenda_annotation.csv"): (base / "lagenda_annotation.csv").read_bytes()}
    return Release(ds, served, samples={"lagenda-age-body": len(want["person"]["samples"]),
                                        "lagenda-age-face": len(want["face"]["samples"])})


def fer2013(src: Path) -> Release:
    """Dropped in as Kaggle's fer2013.tar.gz (fer2013/fer2013.csv)."""
    want = fx.write_ferplus_csv(src)                     # fer2013/fer2013.csv rows aligned with FER+
    csv_path = src / "fer2013" / "fer2013.csv"
    ds = retarget(CATALOG["fer2013"], {"fer2013.csv": n_rows(csv_path)},
                  checksums={"fer2013.csv": "md5:" + hashlib.md5(csv_path.read_bytes()).hexdigest()})
    fer_samples = sum(1 for _ in _fer_test_rows(csv_path))
    return Release(ds, dropped={"fer2013.tar.gz": targz_of(src / "fer2013", "fer2013/")},
                   samples={"fer2013-emotion": fer_samples, "ferplus-emotion": len(want["samples"])})


def _fer_test_rows(path: Path):
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["Usage"] != "Training" and row["emotion"].isdigit() and int(row["emotion"]) < 7:
                yield row


def ferplus(src: Path) -> Release:
    path = src / "ferplus" / "fer2013new.csv"
    if not path.exists():
        fx.write_ferplus_csv(src)
    ds = retarget(CATALOG["ferplus"], {"fer2013new.csv": n_rows(path)},
                  sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    return Release(ds, {part_url(ds, "fer2013new.csv"): path.read_bytes()})


def emotic(src: Path) -> Release:
    """Dropped in as two archives: the images (emotic/<db>/images/…) and Annotations/Annotations.mat."""
    want = fx.write_emotic(src)
    base = src / "emotic"
    ds = retarget(CATALOG["emotic"], {"*/images/*.jpg": n_files(base / "emotic", "*/images/*.jpg")})
    dropped = {"emotic.zip": zip_of(base / "emotic", "emotic/"),
               "Annotations.zip": zip_of(base / "Annotations", "Annotations/")}
    return Release(ds, dropped=dropped, samples={"emotic-emotion": len(want["emotion"]["samples"]),
                                                 "emotic-age": len(want["age"]["samples"])})


KINETICS = [("abseiling", "0wR5jVB-WPk", 417, 427), ("air drumming", "--nQbRBEz2s", 104, 114),
            ("hurling (sport)", "-6bJUbfpnQx", 5, 15), ("massaging person's head", "a1b2c3d4e5f", 0, 10)]


def kinetics400(src: Path) -> Release:
    """val.csv (quoted labels, ids starting with '-'), a k400_val_path.txt listing two tarballs of flat
    clips; the last row's clip is missing from both (as some YouTube clips are)."""
    base = src / "kinetics400"
    (base / "annotations").mkdir(parents=True)
    with open(base / "annotations" / "val.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        w.writerows([label, vid, s, e, "val"] for label, vid, s, e in KINETICS)
    for i, (_, vid, s, e) in enumerate(KINETICS[:3]):
        fx.write_clip(base / f"part_{i % 2}" / f"{vid}_{s:06d}_{e:06d}.mp4", middle=fx.colour(i))
    ds = retarget(CATALOG["kinetics400"], {"val.csv": len(KINETICS), "videos/val/**/*.mp4": 3})
    parts = {f"https://s3.amazonaws.com/kinetics/400/val/part_{i}.tar.gz": targz_of(base / f"part_{i}")
             for i in range(2)}
    listing = "".join(f"{url}\n" for url in parts).encode()        # the real hosts: --mirror rewrites them
    served = {part_url(ds, "val.csv"): (base / "annotations" / "val.csv").read_bytes(),
              part_url(ds, "k400_val_path.txt"): listing, **parts}
    return Release(ds, served, samples={"kinetics400-action": 3})


def mpii(src: Path) -> Release:
    """The six-image .mat of the converter tests, and JPEGs for all but one of its images."""
    mat_dir = src / "mpii_human_pose_v1_u12_2"
    mat_dir.mkdir(parents=True)
    write_mpii(mat_dir / "mpii_human_pose_v1_u12_1.mat")
    names = ["037454012.jpg", "015601864.jpg", "000000001.jpg", "000000002.jpg", "000000003.jpg"]
    for i, name in enumerate(names):
        fx.solid(src / "images" / name, fx.colour(i), (64, 48))
    ds = retarget(CATALOG["mpii"], {"images/*.jpg": len(names)})
    served = {part_url(ds, "mpii_human_pose_v1.tar.gz"): targz_of(src / "images", "images/"),
              part_url(ds, "mpii_human_pose_v1_u12_2.zip"): zip_of(mat_dir, "mpii_human_pose_v1_u12_2/")}
    return Release(ds, served)

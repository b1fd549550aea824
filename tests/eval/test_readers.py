"""Each reader on a fixture written in the dataset's official format: images, labels, class lists
and counted skips must match what the test wrote."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from focusclip.core.errors import FocusError
from focusclip.eval.readers import MissingData, load_image
from focusclip.eval.readers.base import BadImage, ImageRef, clamp_box, find_dir, norm_name
from focusclip.eval.readers.actions import read_kinetics, read_stanford40
from focusclip.eval.readers.emotic import read_emotic_split
from focusclip.eval.readers.faces import FER_CLASSES, FERPLUS_CLASSES, majority_label, read_fer2013, read_ferplus
from focusclip.eval.readers.people import FAIRFACE_AGES, FAIRFACE_RACES, UTK_RACES, read_fairface, read_lagenda, read_utkface
from tests.eval import fixtures as fx

UTK_BINS = [("baby", 2), ("child", 9), ("teenager", 19), ("young adult", 29), ("adult", None)]
LAGENDA_BINS = [("kid", 12), ("teenager", 19), ("adult", None)]
NAMED = {"red": (220, 20, 20), "blue": (20, 20, 220), "green": (20, 200, 20), "magenta": (200, 20, 200),
         "yellow": (200, 200, 20)}


def mean_rgb(img) -> np.ndarray:
    return np.asarray(img, dtype=float).reshape(-1, 3).mean(0)


def assert_colour(img, rgb, tol=8.0):
    assert np.abs(mean_rgb(img) - np.asarray(rgb, float)).max() < tol, (mean_rgb(img), rgb)


def test_stanford40_class_order_from_file_labels_from_xml(tmp_path):
    want = fx.write_stanford40(tmp_path)
    split = read_stanford40(tmp_path)
    assert split.classes == want["classes"]          # file order: phoning after reading
    assert [(s.key, s.labels[0]) for s in split.samples] == [(n, a) for n, a, _ in want["samples"]]
    for s, (_, _, rgb) in zip(split.samples, want["samples"]):
        assert_colour(load_image(s.image), rgb)
    assert dict(split.skipped) == want["skipped"]


def test_kinetics_quoted_labels_dash_ids_frames_and_clips(tmp_path):
    want = fx.write_kinetics(tmp_path)
    split = read_kinetics(tmp_path)
    assert [(s.key, s.labels[0]) for s in split.samples] == [(st, lab) for st, lab, _ in want["samples"]]
    assert split.classes == sorted({r[0] for r in fx.KINETICS_ROWS})
    assert split.samples[3].image.video is not None   # the clip-only row decodes its middle frame
    for s, (_, _, rgb) in zip(split.samples, want["samples"]):
        assert_colour(load_image(s.image), rgb, tol=14)
    assert dict(split.skipped) == want["skipped"]


@pytest.mark.parametrize("variant", ["fer2013", "icml"])
def test_fer2013_csv_variants(tmp_path, variant):
    want = fx.write_fer2013(tmp_path, variant)
    split = read_fer2013(tmp_path)
    assert split.classes == FER_CLASSES
    assert [s.labels[0] for s in split.samples] == [FER_CLASSES[code] for _, code in want["samples"]]
    for s, (i, _) in zip(split.samples, want["samples"]):
        img = load_image(s.image)
        assert img.size == (48, 48) and img.mode == "RGB"
        assert np.array_equal(np.asarray(img)[:, :, 0], fx.fer_pixels(i))
    assert dict(split.skipped) == want["skipped"]


def test_fer2013_class_folders_map_by_name_not_alphabet(tmp_path):
    want = fx.write_fer_folders(tmp_path)
    split = read_fer2013(tmp_path)
    got = {s.key: s.labels[0] for s in split.samples}
    assert got == {key: fx_name.capitalize() for key, fx_name, _ in want["samples"]}
    # alphabetical ImageFolder order would make neutral=4, sad=5, surprise=6; the CSV order is kept
    assert [FER_CLASSES.index(got[k]) for k in ("neutral/PublicTest_9004.jpg", "sad/PublicTest_9005.jpg",
                                                "surprise/PublicTest_9006.jpg")] == [6, 4, 5]
    assert dict(split.skipped) == want["skipped"]
    for s, (_, _, rgb) in zip(split.samples, want["samples"]):
        assert_colour(load_image(s.image), rgb)


def test_ferplus_csv_joined_by_row_position(tmp_path):
    want = fx.write_ferplus_csv(tmp_path)
    split = read_ferplus(tmp_path)
    assert split.classes == FERPLUS_CLASSES
    assert [(s.key, s.labels[0]) for s in split.samples] == [("fer0000004.png", "fear")]
    # pixels come from fer2013.csv row 3 although the name says 4 (names skip indices)
    assert np.array_equal(np.asarray(load_image(split.samples[0].image))[:, :, 0], fx.fer_pixels(3))
    assert dict(split.skipped) == want["skipped"]


def test_ferplus_row_count_mismatch_is_a_user_error(tmp_path):
    fx.write_ferplus_csv(tmp_path)
    with open(tmp_path / "ferplus" / "fer2013new.csv", "a", newline="") as f:
        csv.writer(f, lineterminator="\n").writerow(["PrivateTest", "x.png"] + [1] * 10)
    with pytest.raises(FocusError, match="row position"):
        read_ferplus(tmp_path)


@pytest.mark.parametrize("dialect", ["shipped", "pr"])
def test_ferplus_label_csv_dialects(tmp_path, dialect):
    want = fx.write_ferplus_pngs(tmp_path, dialect)
    split = read_ferplus(tmp_path)
    assert [(s.key, s.labels[0]) for s in split.samples] == [(n, lab) for _, lab, n in want["samples"]]
    for s, (i, _, _) in zip(split.samples, want["samples"]):
        assert np.array_equal(np.asarray(load_image(s.image))[:, :, 0], fx.fer_pixels(i))
    assert dict(split.skipped) == want["skipped"]


def test_majority_vote_rules():
    assert majority_label([0, 0, 0, 0, 0, 0, 0, 6, 4, 0]) == (7, "")            # contempt
    assert majority_label([0] * 10) == (None, "no votes")
    assert majority_label([5, 5, 0, 0, 0, 0, 0, 0, 0, 0]) == (None, "tied vote")
    assert majority_label([1, 0, 0, 0, 0, 0, 0, 0, 9, 0]) == (None, "majority unknown")


# The labels of the four fixture rows whose image exists, written out here (not read back from the
# fixture): FairFace's own spellings, space and underscore kept ("more than 70", "Latino_Hispanic").
FAIRFACE_WANT = {"age": ["50-59", "more than 70", "0-2", "20-29"],
                 "race": ["East Asian", "Latino_Hispanic", "Middle Eastern", "White"]}


@pytest.mark.parametrize("target", ["age", "race"])
def test_fairface(tmp_path, target):
    want = fx.write_fairface(tmp_path)
    split = read_fairface(tmp_path, target=target)
    assert split.classes == (FAIRFACE_AGES if target == "age" else FAIRFACE_RACES)
    got = [(s.key, s.labels[0]) for s in split.samples]
    assert got == list(zip(["val/1.jpg", "val/2.jpg", "val/3.jpg", "val/4.jpg"], FAIRFACE_WANT[target]))
    assert got == [(f, a if target == "age" else r) for f, a, r, _ in want["samples"]]
    for s, (*_, rgb) in zip(split.samples, want["samples"]):
        assert_colour(load_image(s.image), rgb)
    assert dict(split.skipped) == want["skipped"]


def test_utkface_labels_from_names_malformed_counted(tmp_path):
    want = fx.write_utkface(tmp_path)
    age = read_utkface(tmp_path, target="age", age_bins=UTK_BINS)
    race = read_utkface(tmp_path, target="race", age_bins=UTK_BINS)
    groups = {0: "baby", 2: "baby", 3: "child", 9: "child", 10: "teenager", 19: "teenager",
              20: "young adult", 29: "young adult", 30: "adult", 116: "adult"}
    assert [(s.key, s.labels[0]) for s in age.samples] == [(n, groups[a]) for n, a, _ in want]
    assert [s.labels[0] for s in race.samples] == [UTK_RACES[r] for _, _, r in want]
    assert age.classes == [b for b, _ in UTK_BINS] and race.classes == UTK_RACES
    assert dict(age.skipped) == {"malformed file name": len(fx.UTK_MALFORMED)}


@pytest.mark.parametrize("crop", ["person", "face"])
def test_lagenda_by_column_name_missing_values_and_clamped_crops(tmp_path, crop):
    want = fx.write_lagenda(tmp_path)[crop]
    split = read_lagenda(tmp_path, crop=crop, age_bins=LAGENDA_BINS)
    assert [s.labels[0] for s in split.samples] == [g for g, _, _ in want["samples"]]
    for s, (_, box, name) in zip(split.samples, want["samples"]):
        img = load_image(s.image)
        assert img.size == (box[2] - box[0], box[3] - box[1])
        assert_colour(img, NAMED[name], tol=12)
    assert dict(split.skipped) == want["skipped"]


@pytest.mark.parametrize("target", ["emotion", "age"])
def test_emotic_through_the_converter(tmp_path, target):
    want = fx.write_emotic(tmp_path)[target]
    split = read_emotic_split(tmp_path, "test", target)
    assert [s.labels for s in split.samples] == [labels for labels, _ in want["samples"]]
    assert len(split.classes) == (26 if target == "emotion" else 3)
    for s, (_, name) in zip(split.samples, want["samples"]):
        assert_colour(load_image(s.image), NAMED[name], tol=12)
    assert dict(split.skipped) == want["skipped"]


@pytest.mark.parametrize("reader, expected", [
    (read_stanford40, "stanford40/ImageSplits/test.txt"),
    (read_kinetics, "kinetics400/annotations/val.csv"),
    (read_fer2013, "fer2013/fer2013.csv"),
    (read_ferplus, "ferplus/fer2013new.csv"),
    (read_fairface, "fairface/fairface_label_val.csv"),
    (lambda root: read_utkface(root, age_bins=UTK_BINS), "utkface/UTKFace"),
    (lambda root: read_lagenda(root, age_bins=LAGENDA_BINS), "lagenda/lagenda_annotation.csv"),
    (read_emotic_split, "emotic/Annotations/Annotations.mat"),
])
def test_absent_dataset_names_the_expected_path(tmp_path, reader, expected):
    (tmp_path / "kinetics400" / "frames" / "val").mkdir(parents=True)
    (tmp_path / "kinetics400" / "frames" / "val" / "x.jpg").write_bytes(b"")
    with pytest.raises(MissingData) as e:
        reader(tmp_path)
    assert e.value.expected == str(tmp_path / expected)


# --- the readers' shared helpers (readers/base.py) ---------------------------------------------------
@pytest.mark.parametrize("box, want", [
    ((10, 20, 30, 40), (10, 20, 30, 40)),
    ((10.2, 20.7, 29.1, 39.5), (10, 20, 30, 40)),        # outward to whole pixels: floor, then ceil
    ((30, 40, 10, 20), (10, 20, 30, 40)),                # corners given in either order
    ((-10, -5, 40, 60), (0, 0, 40, 48)),                 # clamped to the 64×48 image
    ((70, 10, 90, 20), None),                            # wholly right of the image
    ((10, 10, 10, 30), None),                            # zero width
])
def test_clamp_box(box, want):
    assert clamp_box(box, 64, 48) == want


def test_load_image_crops_the_clamped_box_and_refuses_slivers(tmp_path):
    from PIL import Image

    arr = np.zeros((48, 64, 3), np.uint8)
    arr[:, 32:] = (20, 20, 220)                          # right half blue, left half black
    Image.fromarray(arr).save(tmp_path / "a.png")
    img = load_image(ImageRef(path=str(tmp_path / "a.png"), box=(40.5, -3, 80, 20.2)))
    assert img.size == (64 - 40, 21) and img.mode == "RGB"
    assert_colour(img, (20, 20, 220), tol=0.5)
    with pytest.raises(BadImage, match="smaller than 2 px"):
        load_image(ImageRef(path=str(tmp_path / "a.png"), box=(63, 0, 70, 10)))     # 1 px wide once clamped
    with pytest.raises(BadImage, match="unreadable image"):
        load_image(ImageRef(path=str(tmp_path / "absent.png")))


def test_class_names_compare_loosely_and_folders_by_first_existing_name(tmp_path):
    assert norm_name("watching_TV") == norm_name("watching  tv ") == "watching tv"
    assert norm_name("East Asian") == norm_name("east_asian") and norm_name("a") != norm_name("b")
    (tmp_path / "Images").mkdir()
    assert find_dir(tmp_path, "JPEGImages", "Images") == tmp_path / "Images"
    (tmp_path / "JPEGImages").mkdir()
    assert find_dir(tmp_path, "JPEGImages", "Images") == tmp_path / "JPEGImages"     # the first that exists
    assert find_dir(tmp_path, "frames", "clips") is None

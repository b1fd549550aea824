"""Small evaluation datasets written in their official on-disk formats (docs/formats.md §2-§9), with the
quirks real files have, and what a reader must get out of each. Every image is a solid colour (or a
known pattern) so a test can check that the reader points at the right pixels."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

EMPTY = np.zeros((0, 0))


def colour(i: int) -> tuple[int, int, int]:
    """A distinct, JPEG-stable colour per index."""
    return (40 + 37 * i % 200, 200 - 23 * i % 180, 60 + 51 * i % 190)


def solid(path: Path, rgb, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    Image.new("RGB", size, tuple(rgb)).save(path, format=fmt, quality=95)


# ------------------------------------------------------------------------------ Stanford 40
# actions.txt order is NOT alphabetical (phoning after reading), tab-separated with a header
S40_ACTIONS = ["applauding", "reading", "phoning", "watching_TV"]


def write_stanford40(root: Path) -> dict:
    base = root / "stanford40"
    (base / "ImageSplits").mkdir(parents=True)
    lines = ["action_name\tnumber_of_images"] + [f"{a}\t\t{10 + i}" for i, a in enumerate(S40_ACTIONS)]
    (base / "ImageSplits" / "actions.txt").write_text("\n".join(lines) + "\n")
    test = ["applauding_001.jpg", "reading_002.jpg", "phoning_001.jpg", "watching_TV_003.jpg",
            "reading_009.jpg",   # no XML → skipped
            "phoning_007.jpg"]   # no image → skipped
    (base / "ImageSplits" / "test.txt").write_text("\n".join(test) + "\n")
    (base / "ImageSplits" / "train.txt").write_text("applauding_100.jpg\n")
    expected = []
    for i, name in enumerate(test + ["applauding_100.jpg"]):
        action = name.rsplit("_", 1)[0]
        if name != "phoning_007.jpg":
            solid(base / "JPEGImages" / name, colour(i))
        if name != "reading_009.jpg":
            _stanford_xml(base / "XMLAnnotations" / name.replace(".jpg", ".xml"), name, action)
        if i < 4:
            expected.append((name, action, colour(i)))
    return {"samples": expected, "classes": S40_ACTIONS,
            "skipped": {"image missing": 1, "XML annotation missing or without object/action": 1}}


def _stanford_xml(path: Path, name: str, action: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation>\n  <filename>{name}</filename>\n  <folder>Stanford40</folder>\n"
                    f"  <object>\n    <action>{action}</action>\n    <bndbox>\n      <xmax>30</xmax>\n"
                    f"      <xmin>2</xmin>\n      <ymax>28</ymax>\n      <ymin>1</ymin>\n    </bndbox>\n"
                    f"    <name>person</name>\n  </object>\n  <size>\n    <depth>3</depth>\n"
                    f"    <height>30</height>\n    <width>40</width>\n  </size>\n</annotation>\n")


# ------------------------------------------------------------------------------ Kinetics-400
KINETICS_ROWS = [  # label, youtube_id, start, end; written with csv quoting as the ActivityNet files
    ("abseiling", "0wR5jVB-WPk", 417, 427),
    ("air drumming", "--nQbRBEz2s", 104, 114),
    ("hurling (sport)", "-6bJUbfpnQx", 5, 15),
    ("massaging person's head", "a1b2c3d4e5f", 0, 10),
    ("air drumming", "zzzzzzzzzzz", 30, 40),  # neither frame nor clip → skipped
]


def write_kinetics(root: Path, clip_row: int = 3) -> dict:
    """Frames for every row but the last two; row `clip_row` only as an mp4 clip in a class folder
    (the torchvision layout), whose middle frame has its own colour."""
    base = root / "kinetics400"
    (base / "annotations").mkdir(parents=True)
    with open(base / "annotations" / "val.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split", "is_cc"])
        for label, vid, s, e in KINETICS_ROWS:
            w.writerow([label, vid, s, e, "val", 0])
    expected = []
    for i, (label, vid, s, e) in enumerate(KINETICS_ROWS[:4]):
        stem = f"{vid}_{s:06d}_{e:06d}"
        if i == clip_row:
            write_clip(base / "videos" / "val" / label.replace(" ", "_") / f"{stem}.mp4", middle=colour(i))
        else:
            solid(base / "frames" / "val" / f"{stem}.jpg", colour(i))
        expected.append((stem, label, colour(i)))
    return {"samples": expected, "skipped": {"no middle frame and no clip": 1}}


def write_clip(path: Path, middle, frames: int = 9, size=(32, 24)) -> None:
    """An mp4 whose middle frame (index frames // 2) is `middle` (RGB); the others are black/white."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    assert out.isOpened(), "OpenCV cannot write mp4v here"
    for k in range(frames):
        rgb = middle if k == frames // 2 else ((255, 255, 255) if k % 2 else (0, 0, 0))
        out.write(np.full((size[1], size[0], 3), rgb[::-1], np.uint8))
    out.release()


# ------------------------------------------------------------------------------ FER2013 / FER+
def fer_pixels(i: int) -> np.ndarray:
    """A 48×48 image with a per-row value pattern, unique per i."""
    return ((np.arange(48 * 48).reshape(48, 48) * (i + 1)) % 256).astype(np.uint8)


FER_ROWS = [(0, "Training"), (3, "PublicTest"), (6, "PublicTest"), (4, "PrivateTest"), (5, "PrivateTest"),
            (1, "PrivateTest"), (2, "Training")]


def write_fer2013(root: Path, variant: str = "fer2013") -> dict:
    """fer2013.csv (`emotion,pixels,Usage`) or icml_face_data.csv (`emotion, Usage, pixels`)."""
    base = root / "fer2013"
    base.mkdir(parents=True, exist_ok=True)
    name, header = (("fer2013.csv", ["emotion", "pixels", "Usage"]) if variant == "fer2013"
                    else ("icml_face_data.csv", ["emotion", " Usage", " pixels"]))
    rows = FER_ROWS + [(9, "PublicTest")]  # emotion code 9 does not exist → skipped
    with open(base / name, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for i, (code, usage) in enumerate(rows):
            px = " ".join(map(str, fer_pixels(i).ravel()))
            cells = {"emotion": code, "pixels": px, "Usage": usage}
            w.writerow([cells[h.strip()] for h in header])
    want = [(i, code) for i, (code, usage) in enumerate(FER_ROWS) if usage != "Training"]
    return {"samples": want, "skipped": {"emotion code not 0-6": 1}}


def write_fer_folders(root: Path) -> dict:
    """The Kaggle layout: test/<class>/PublicTest_<id>.jpg, lowercase class folders."""
    want = []
    for i, folder in enumerate(["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]):
        solid(root / "fer2013" / "test" / folder / f"PublicTest_{9000 + i}.jpg", colour(i), (48, 48))
        want.append((f"{folder}/PublicTest_{9000 + i}.jpg", folder, colour(i)))
    solid(root / "fer2013" / "test" / "contempt" / "PrivateTest_1.jpg", colour(9), (48, 48))
    solid(root / "fer2013" / "train" / "happy" / "Training_1.jpg", colour(8), (48, 48))
    return {"samples": want, "skipped": {"unknown class folder contempt": 1}}


FERPLUS_HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                  "fear", "contempt", "unknown", "NF"]
# rows aligned with FER_ROWS by position; names skip indices as the real file does
FERPLUS_ROWS = [
    ("Training", "fer0000000.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),
    ("PublicTest", "fer0000001.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),
    ("PublicTest", "fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),
    ("PrivateTest", "fer0000004.png", [1, 0, 0, 0, 0, 0, 7, 2, 0, 0]),    # fear
    ("PrivateTest", "fer0000005.png", [3, 0, 0, 0, 0, 0, 0, 0, 3, 0]),    # tie neutral/unknown → skipped
    ("PrivateTest", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),                 # no name (not a face)
    ("Training", "fer0000007.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
]


def write_ferplus_csv(root: Path) -> dict:
    """fer2013new.csv beside fer2013/fer2013.csv, joined by row position."""
    write_fer2013(root)
    rows = FERPLUS_ROWS + [("PublicTest", "fer0000011.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # fer2013 row 7
                           ("PrivateTest", "fer0000012.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # no votes
                           ("PrivateTest", "fer0000013.png", [0, 0, 0, 0, 0, 0, 0, 2, 0, 8])]  # NF majority
    _append_fer_rows(root / "fer2013" / "fer2013.csv", [(0, "PrivateTest"), (1, "PrivateTest")], start=8)
    (root / "ferplus").mkdir(parents=True, exist_ok=True)
    with open(root / "ferplus" / "fer2013new.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FERPLUS_HEADER)
        for usage, name, votes in rows:
            w.writerow([usage, name, *votes])
    return {"samples": [(3, "fear")],
            "skipped": {"tied vote": 1, "no image name (FER+ made no image)": 1, "no votes": 1,
                        "majority NF": 1}}


def _append_fer_rows(path: Path, rows, start: int) -> None:
    with open(path, "a", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        for j, (code, usage) in enumerate(rows):
            w.writerow([code, " ".join(map(str, fer_pixels(start + j).ravel())), usage])


def write_ferplus_pngs(root: Path, dialect: str) -> dict:
    """FER2013Test/*.png + label.csv without header: `shipped` has the box column, `pr` has not."""
    folder = root / "ferplus" / "FER2013Test"
    folder.mkdir(parents=True)
    rows = [("fer0032220.png", [0, 0, 9, 0, 0, 0, 0, 0, 1, 0]),    # surprise
            ("fer0032222.png", [1, 1, 0, 0, 4, 4, 0, 0, 0, 0]),    # tie anger/disgust → skipped
            ("fer0032224.png", [2, 0, 0, 0, 0, 0, 0, 6, 2, 0]),    # contempt
            ("fer0032230.png", [5, 5, 0, 0, 0, 0, 0, 0, 0, 0])]    # tie → skipped
    with open(folder / "label.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        for i, (name, votes) in enumerate(rows):
            Image.fromarray(fer_pixels(i)).save(folder / name)
            w.writerow([name, "(0, 0, 48, 48)", *votes] if dialect == "shipped" else [name, *votes])
        w.writerow(["fer0099999.png", "(0, 0, 48, 48)", 9, 0, 0, 0, 0, 0, 0, 0, 1, 0] if dialect == "shipped"
                   else ["fer0099999.png", 9, 0, 0, 0, 0, 0, 0, 0, 1, 0])   # listed, no PNG
    return {"samples": [(0, "surprise", "fer0032220.png"), (2, "contempt", "fer0032224.png")],
            "skipped": {"tied vote": 2, "image missing": 1}}


# ------------------------------------------------------------------------------ FairFace
FAIRFACE_ROWS = [("val/1.jpg", "50-59", "Male", "East Asian"), ("val/2.jpg", "more than 70", "Female", "Latino_Hispanic"),
                 ("val/3.jpg", "0-2", "Female", "Middle Eastern"), ("val/4.jpg", "20-29", "Male", "White"),
                 ("val/5.jpg", "30-39", "Male", "Black")]   # val/5.jpg is not written → skipped


def write_fairface(root: Path) -> dict:
    base = root / "fairface"
    base.mkdir(parents=True)
    with open(base / "fairface_label_val.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "age", "gender", "race", "service_test"])
        for i, (file, age, gender, race) in enumerate(FAIRFACE_ROWS):
            w.writerow([file, age, gender, race, "True" if i % 2 else "False"])
            if i < 4:
                solid(base / "fairface-img-margin025-trainval" / file, colour(i), (44, 44))
    return {"samples": [(f, a, r, colour(i)) for i, (f, a, _, r) in enumerate(FAIRFACE_ROWS[:4])],
            "skipped": {"image missing": 1}}


# ------------------------------------------------------------------------------ UTKFace
UTK_GOOD = [(0, 1, 2), (2, 0, 0), (3, 1, 1), (9, 0, 3), (10, 1, 4), (19, 0, 0), (20, 1, 2), (29, 0, 1),
            (30, 1, 3), (116, 0, 0)]
UTK_MALFORMED = ["39_1_20170116174525125.jpg.chip.jpg", "61_1_20170109150557335.jpg.chip.jpg",
                 "61_1_20170109142408075.jpg.chip.jpg", "55_0_0_20170116232725357jpg"]


def write_utkface(root: Path, colour_by: str = "index") -> list[tuple[str, int, int]]:
    """UTKFace/<age>_<gender>_<race>_<17 digits>.jpg.chip.jpg plus the documented malformed names.
    `colour_by="race"` paints each image with colour(race) (for the fake model)."""
    folder = root / "utkface" / "UTKFace"
    want = []
    for i, (age, gender, race) in enumerate(UTK_GOOD):
        name = f"{age}_{gender}_{race}_2017011617452{i:04d}.jpg.chip.jpg"
        solid(folder / name, colour(race if colour_by == "race" else i), (40, 40))
        want.append((name, age, race))
    for i, name in enumerate(UTK_MALFORMED):
        solid(folder / name, colour(20 + i), (40, 40))
    return sorted(want)


# ------------------------------------------------------------------------------ LAGENDA
def write_lagenda(root: Path) -> dict:
    """Columns in a different order than MiVOLO writes them (readers go by name). Image a.jpg is 100×80:
    left half red, right half blue, so crops can be checked by colour."""
    base = root / "lagenda"
    img = np.zeros((80, 100, 3), np.uint8)
    img[:, :50] = (220, 20, 20)
    img[:, 50:] = (20, 20, 220)
    (base / "lag_benchmark").mkdir(parents=True)
    Image.fromarray(img).save(base / "lag_benchmark" / "a.jpg", quality=95)
    header = ["img_name", "gender", "age", "person_x0", "person_y0", "person_x1", "person_y1",
              "face_x0", "face_y0", "face_x1", "face_y1"]
    rows = [  # img, gender, age, person box, face box
        ("lag_benchmark/a.jpg", "M", "30", (-10, -5, 40, 60), (60, 10, 90, 40)),   # person clamped, red; face blue
        ("lag_benchmark/a.jpg", "F", "8", (55, 0, 120, 90), (10, 10, 30, 30)),     # person blue (clamped); face red
        ("lag_benchmark/a.jpg", "-1", "-1", (0, 0, 50, 50), (-1, -1, -1, -1)),     # detector-only box: no age
        ("lag_benchmark/a.jpg", "F", "15", (-1, -1, -1, -1), (52, 5, 70, 30)),     # no person box
        ("lag_benchmark/b5c8ef090f134ad5.jpg.jpg", "M", "40", (0, 0, 10, 10), (0, 0, 5, 5)),  # missing file
    ]
    with open(base / "lagenda_annotation.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for name, gender, age, pb, fb in rows:
            w.writerow([name, gender, age, *pb, *fb])
    return {
        "person": {"samples": [("adult", (0, 0, 40, 60), "red"), ("kid", (55, 0, 100, 80), "blue")],
                   "skipped": {"age missing (-1)": 1, "no person box (-1)": 1, "image missing": 1}},
        "face": {"samples": [("adult", (60, 10, 90, 40), "blue"), ("kid", (10, 10, 30, 30), "red"),
                             ("teenager", (52, 5, 70, 30), "blue")],
                 "skipped": {"age missing (-1)": 1, "image missing": 1}},
    }


# ------------------------------------------------------------------------------ EMOTIC
def _struct_array(names, rows) -> np.ndarray:
    arr = np.empty((1, len(rows)), dtype=[(k, object) for k in names])
    for j, row in enumerate(rows):
        arr[0, j] = row
    return arr


def _cell(*values) -> np.ndarray:
    c = np.empty((1, len(values)), dtype=object)
    for j, v in enumerate(values):
        c[0, j] = v
    return c


def _dbl(v):
    return np.array([[v]], np.float64)


IMG = ("filename", "folder", "image_size", "original_database", "person")
TEST_PERSON = ("body_bbox", "annotations_categories", "combined_categories", "annotations_continuous",
               "combined_continuous", "gender", "age")


def _test_person(box, combined, age):
    ann = _struct_array(("categories",), [(_cell(*combined) if combined else EMPTY,)])
    vad = _struct_array(("valence", "arousal", "dominance"), [(_dbl(5), _dbl(5), _dbl(5))])
    comb = _cell(*combined) if len(combined) > 1 else (combined[0] if combined else EMPTY)
    return (np.array([box], np.float64), ann, comb, vad,
            _struct_array(("valence", "arousal", "dominance"), [(_dbl(5), _dbl(5), _dbl(5))]), "Male", age)


def _image(filename, folder, w, h, people):
    size = _struct_array(("n_col", "n_row"), [(np.array([[w]], np.uint16), np.array([[h]], np.uint16))])
    db = _struct_array(("name",), [(folder.split("/")[0],)])
    return (filename, folder, size, db, _struct_array(TEST_PERSON, people))


def write_emotic(root: Path) -> dict:
    """Annotations/Annotations.mat (train/val/test struct arrays) + images under emotic/emotic/<folder>/.
    Image p.jpg (60×40): left half green, right half magenta."""
    base = root / "emotic"
    (base / "Annotations").mkdir(parents=True)
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :30] = (20, 200, 20)
    img[:, 30:] = (200, 20, 200)
    (base / "emotic" / "mscoco" / "images").mkdir(parents=True)
    Image.fromarray(img).save(base / "emotic" / "mscoco" / "images" / "p.jpg", quality=95)
    solid(base / "emotic" / "framesdb" / "images" / "q.jpg", (200, 200, 20), (50, 50))
    test = _struct_array(IMG, [
        _image("p.jpg", "mscoco/images", 60, 40, [
            _test_person([0, 0, 28, 40], ["Happiness", "Pleasure"], "Adult"),     # green, two labels
            _test_person([32, -5, 90, 40], ["Doubt/Confusion"], "Kid"),          # magenta, clamped by converter
            _test_person([5, 5, 20, 20], [], "Teenager")]),                       # no categories (emotion skips)
        _image("q.jpg", "framesdb/images", 50, 50, [_test_person([0, 0, 50, 50], ["Anger"], "Teenager")]),
        _image("missing.jpg", "ade20k/images", 50, 50, [_test_person([0, 0, 10, 10], ["Fear"], "Adult")]),
    ])
    train = _struct_array(IMG, [_image("t.jpg", "mscoco/images", 10, 10, [_test_person([0, 0, 5, 5], ["Fear"], "Adult")])])
    scipy.io.savemat(base / "Annotations" / "Annotations.mat", {"train": train, "val": train, "test": test})
    return {
        "emotion": {"samples": [(("Happiness", "Pleasure"), "green"), (("Doubt/Confusion",), "magenta"),
                                (("Anger",), "yellow")],
                    "skipped": {"no emotion categories": 1, "image missing": 1}},
        "age": {"samples": [(("Adult",), "green"), (("Kid",), "magenta"), (("Teenager",), "green"),
                            (("Teenager",), "yellow")],
                "skipped": {"image missing": 1}},
    }

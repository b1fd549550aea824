"""Hand-built `.mat` files in the real MPII and EMOTIC layouts (nested struct arrays written with
scipy.io.savemat), independent of the project's own writer, plus the values each one must yield."""
from __future__ import annotations

import numpy as np
import scipy.io

EMPTY = np.zeros((0, 0))


def struct(**fields) -> np.ndarray:
    """A MATLAB 1×1 struct."""
    arr = np.empty((1, 1), dtype=[(k, object) for k in fields])
    arr[0, 0] = tuple(fields.values())
    return arr


def struct_array(names: tuple[str, ...], rows: list[tuple], shape=None) -> np.ndarray:
    """A MATLAB struct array (default 1×n) whose elements share one field set."""
    arr = np.empty(shape or (1, len(rows)), dtype=[(k, object) for k in names])
    for j, row in enumerate(rows):
        arr.flat[j] = row
    return arr


def u8(v):
    return np.array([[v]], np.uint8)


def u16(v):
    return np.array([[v]], np.uint16)


def dbl(v):
    return np.array([[v]], np.float64)


def cell(*values) -> np.ndarray:
    c = np.empty((1, len(values)), dtype=object)
    for j, v in enumerate(values):
        c[0, j] = v
    return c


POINT = ("x", "y", "id", "is_visible")
TRAIN_RECT = ("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")


def points(rows, names=POINT) -> np.ndarray:
    return struct(point=struct_array(names, rows))


# ---------------------------------------------------------------- MPII
# Person of 015601864.jpg (the HRNet sample): 1-based joints in file order 0..15, shuffled on write.
CURLER = [(620, 394), (616, 269), (573, 185), (647, 188), (661, 221), (656, 231), (610, 187), (647, 176),
          (637.0201, 189.8183), (695.9799, 108.1817), (606, 217), (553, 161), (601, 167), (692, 185),
          (693, 240), (688, 313)]
CURLER_VIS = ["1", "1", "0", "1", "0", "1", "1", "1", "1", "1", "0", "0", "1", "1", "1", "1"]
VIDEOS = ["aAOusnrSsHI", "-6bJUbfpnQx", "zzzzzzzzzzz"]
LONG_ACT = "sitting, talking in person, on the phone, computer, or text messaging, light effort"


def _coord(v):
    return u16(v) if float(v).is_integer() else dbl(v)


def mpii_release() -> dict:
    """Six images covering docs/formats.md §10 (see EXPECTED_MPII for what each must yield)."""
    order = [9, 0, 15, 3, 8, 1, 14, 2, 13, 4, 12, 5, 11, 6, 10, 7]  # points stored out of id order
    curler_pts = [(_coord(CURLER[j][0]), _coord(CURLER[j][1]), u8(j), CURLER_VIS[j]) for j in order]
    img1_rect = struct_array(TRAIN_RECT, [(u16(627), u16(68), u16(709), u16(233), points(curler_pts),
                                           dbl(3.021046), struct(x=u16(594), y=u16(257)))])
    test_rects = struct_array(("scale", "objpos"), [(dbl(2.563847109326139), struct(x=u16(424), y=u16(382))),
                                                    (dbl(1.8672246785001532), struct(x=u16(615), y=u16(426)))])
    mixed = struct_array(TRAIN_RECT, [
        # no annopoints, no scale/objpos: a person with nothing but a head box
        (dbl(10.5), dbl(20), dbl(30), dbl(40), EMPTY, EMPTY, EMPTY),
        # one labelled joint: `point` is a 1×1 struct; is_visible empty
        (EMPTY, EMPTY, EMPTY, EMPTY, points([(dbl(100.5), dbl(50.25), u8(9), EMPTY)]), dbl(1.5),
         struct(x=dbl(99.5), y=dbl(60))),
        # numeric is_visible, a point with id 16 (ignored), a point with empty x (ignored)
        (u16(1), u16(2), u16(3), u16(4),
         points([(u16(11), u16(12), u8(0), dbl(1)), (u16(21), u16(22), u8(5), u8(0)),
                 (u16(31), u16(32), u8(16), dbl(1)), (EMPTY, u16(42), u8(6), dbl(1))]),
         dbl(2.0), struct(x=u16(300), y=u16(200)))])
    no_vis = struct_array(TRAIN_RECT, [(u16(5), u16(6), u16(7), u16(8),
                                        points([(u16(51), u16(52), u8(1)), (u16(61), u16(62), u8(2))],
                                               names=("x", "y", "id")), dbl(0.9), struct(x=u16(56), y=u16(57)))])
    annolist = struct_array(("image", "annorect", "frame_sec", "vididx"), [
        (struct(name="037454012.jpg"), test_rects, EMPTY, EMPTY),
        (struct(name="015601864.jpg"), img1_rect, u8(7), u16(1)),
        (struct(name="000000001.jpg"), EMPTY, u16(300), EMPTY),
        (struct(name="000000002.jpg"), mixed, EMPTY, u16(2)),
        (struct(name="000000003.jpg"), no_vis, dbl(12), u16(99)),
        (struct(name="000000004.jpg"), struct_array(TRAIN_RECT, [(EMPTY,) * 7]), EMPTY, EMPTY),
    ])
    act = struct_array(("act_name", "cat_name", "act_id"), [
        (EMPTY, EMPTY, dbl(-1)), ("curling", "sports", u16(975)), (EMPTY, EMPTY, dbl(-1)),
        (LONG_ACT, "miscellaneous", u16(8)), ("curling", "sports", dbl(975)), (EMPTY, EMPTY, dbl(-1))],
        shape=(6, 1))
    single = np.empty((6, 1), dtype=object)
    for i, v in enumerate([np.array([[1], [2]], np.uint8), u8(1), EMPTY, np.array([[2], [3], [7]], np.uint8),
                           EMPTY, u8(1)]):
        single[i, 0] = v
    release = struct(annolist=annolist, img_train=np.array([[0, 1, 1, 1, 1, 1]], np.uint8),
                     version="12", single_person=single, act=act,
                     video_list=cell(*VIDEOS))
    return {"RELEASE": release}


def _kpts(pairs: dict[int, tuple]) -> tuple[list, list]:
    kpts, vis = [[-1.0, -1.0] for _ in range(16)], [0] * 16
    for j, (x, y, v) in pairs.items():
        kpts[j], vis[j] = [x, y], v
    return kpts, vis


def expected_mpii() -> list[dict]:
    """What each image of `mpii_release` must convert to (0-based, COCO visibility), split before val."""
    curler = {j: (CURLER[j][0] - 1.0, CURLER[j][1] - 1.0, 2 if CURLER_VIS[j] == "1" else 1) for j in range(16)}
    k1, v1 = _kpts(curler)
    kb, vb = _kpts({9: (99.5, 49.25, 2)})
    kc, vc = _kpts({0: (10.0, 11.0, 2), 5: (20.0, 21.0, 1)})
    kd, vd = _kpts({1: (50.0, 51.0, 2), 2: (60.0, 61.0, 2)})
    k0, v0 = _kpts({})

    def person(i, center, scale, head_box, kpts=k0, vis=v0):
        return {"id": i, "center": center, "scale": scale, "head_box": head_box, "kpts": kpts, "kpts_vis": vis}

    def image(name, split, vid, frame, act_id, cat, act, single, people):
        return {"image": name, "split": split, "width": None, "height": None, "video_id": vid,
                "video_frame": frame, "activity_id": act_id, "category": cat, "activity": act,
                "single_person": single, "people": people}

    return [
        image("037454012.jpg", "test", None, None, -1, "", "", [0, 1],
              [person(0, [423.0, 381.0], 2.563847109326139, None),
               person(1, [614.0, 425.0], 1.8672246785001532, None)]),
        image("015601864.jpg", "train", "aAOusnrSsHI", 7, 975, "sports", "curling", [0],
              [person(0, [593.0, 256.0], 3.021046, [626.0, 67.0, 708.0, 232.0], k1, v1)]),
        image("000000001.jpg", "train", None, 300, -1, "", "", [], []),
        image("000000002.jpg", "train", "-6bJUbfpnQx", None, 8, "miscellaneous", LONG_ACT, [1, 2],
              [person(0, None, None, [9.5, 19.0, 29.0, 39.0]),
               person(1, [98.5, 59.0], 1.5, None, kb, vb),
               person(2, [299.0, 199.0], 2.0, [0.0, 1.0, 2.0, 3.0], kc, vc)]),
        image("000000003.jpg", "train", None, 12, 975, "sports", "curling", [],
              [person(0, [55.0, 56.0], 0.9, [4.0, 5.0, 6.0, 7.0], kd, vd)]),
        image("000000004.jpg", "train", None, None, -1, "", "", [0], [person(0, None, None, None)]),
    ]


def write_mpii(path, release: dict | None = None) -> None:
    scipy.io.savemat(path, release or mpii_release(), do_compression=True)


# ---------------------------------------------------------------- EMOTIC
CAT = ("categories",)
VAD = ("valence", "arousal", "dominance")


def _img(filename, folder, ncol, nrow, db, person):
    return (filename, folder, struct(n_col=u16(ncol), n_row=u16(nrow)),
            struct(name=db, info=struct(image_id=dbl(1))), person)


IMG = ("filename", "folder", "image_size", "original_database", "person")
TRAIN_PERSON = ("body_bbox", "annotations_categories", "annotations_continuous", "gender", "age")
TEST_PERSON = ("body_bbox", "annotations_categories", "combined_categories", "annotations_continuous",
               "combined_continuous", "gender", "age")


def emotic_annotations() -> dict:
    """train: a one-person image with one category (both squeezed) and a two-person image with a box
    outside the image and a NaN valence; val: two annotators; test: one annotator, empty combined."""
    solo = struct_array(TRAIN_PERSON, [(np.array([[86, 58, 564, 628]], np.float64),
                                        struct(categories=cell("Disconnection")),
                                        struct(valence=dbl(5), arousal=dbl(3), dominance=dbl(9)), "Male", "Adult")])
    pair = struct_array(TRAIN_PERSON, [
        (np.array([[-5, 10, 700, 200]], np.float64), struct(categories=cell("Happiness", "Pleasure", "Happiness")),
         struct(valence=dbl(np.nan), arousal=dbl(6), dominance=dbl(7)), "Female", "Kid"),
        (np.array([[1, 2, 3, 4]], np.int16), struct(categories=cell("Doubt/Confusion")),
         struct(valence=u8(4), arousal=u8(4), dominance=u8(4)), EMPTY, "Teenager")])
    train = struct_array(IMG, [_img("COCO_train2014_000000288841.jpg", "mscoco/images", 640, 480, "mscoco", solo),
                               _img("a1.jpg", "framesdb/images", 600, 400, "framesdb", pair)])
    ann = struct_array(CAT, [(cell("Anger", "Fear"),), ("Fear",)])
    cont = struct_array(VAD, [(dbl(2), dbl(8), dbl(3)), (dbl(4), dbl(6), dbl(5))])
    vperson = struct_array(TEST_PERSON, [(np.array([[0, 0, 50, 60]], np.float64), ann, cell("Anger", "Fear"), cont,
                                          struct(valence=dbl(3), arousal=dbl(7), dominance=dbl(4)), "Male", "Adult")])
    val = struct_array(IMG, [_img("v.jpg", "ade20k/images", 100, 100, "ade20k", vperson)])
    tperson = struct_array(TEST_PERSON, [(np.array([[10, 20, 30, 40]], np.float64),
                                          struct_array(CAT, [(EMPTY,)]), EMPTY,
                                          struct_array(VAD, [(dbl(5), dbl(5), dbl(5))]),
                                          struct(valence=dbl(5), arousal=dbl(5), dominance=dbl(5)), "Female", "Adult")])
    test = struct_array(IMG, [_img("12ctuwhai2qxczp2wf.jpg", "emodb_small/images", 80, 90, "emodb_small", tperson)])
    return {"train": train, "val": val, "test": test}


def expected_emotic() -> dict[str, list[dict]]:
    def rec(image, split, idx, person, w, h, db, box, cats, ann_cats, vad, ann_vad, gender, age):
        folder, filename = image.rsplit("/", 1)
        return {"image": image, "folder": folder, "filename": filename, "split": split, "image_index": idx,
                "person": person, "width": w, "height": h, "original_database": db, "body_box": box,
                "categories": cats, "annotator_categories": ann_cats, **vad, "annotator_continuous": ann_vad,
                "gender": gender, "age": age}

    def v(a, b, c):
        return {"valence": a, "arousal": b, "dominance": c}

    return {
        "train": [
            rec("mscoco/images/COCO_train2014_000000288841.jpg", "train", 0, 0, 640, 480, "mscoco",
                [86.0, 58.0, 564.0, 480.0], ["Disconnection"], [["Disconnection"]], v(5.0, 3.0, 9.0),
                [v(5.0, 3.0, 9.0)], "Male", "Adult"),
            rec("framesdb/images/a1.jpg", "train", 1, 0, 600, 400, "framesdb", [0.0, 10.0, 600.0, 200.0],
                ["Happiness", "Pleasure"], [["Happiness", "Pleasure"]], v(None, 6.0, 7.0), [v(None, 6.0, 7.0)],
                "Female", "Kid"),
            rec("framesdb/images/a1.jpg", "train", 1, 1, 600, 400, "framesdb", [1.0, 2.0, 3.0, 4.0],
                ["Doubt/Confusion"], [["Doubt/Confusion"]], v(4.0, 4.0, 4.0), [v(4.0, 4.0, 4.0)], None, "Teenager"),
        ],
        "val": [rec("ade20k/images/v.jpg", "val", 0, 0, 100, 100, "ade20k", [0.0, 0.0, 50.0, 60.0],
                    ["Anger", "Fear"], [["Anger", "Fear"], ["Fear"]], v(3.0, 7.0, 4.0),
                    [v(2.0, 8.0, 3.0), v(4.0, 6.0, 5.0)], "Male", "Adult")],
        "test": [rec("emodb_small/images/12ctuwhai2qxczp2wf.jpg", "test", 0, 0, 80, 90, "emodb_small",
                     [10.0, 20.0, 30.0, 40.0], [], [[]], v(5.0, 5.0, 5.0), [v(5.0, 5.0, 5.0)], "Female", "Adult")],
    }


def write_emotic(path) -> None:
    scipy.io.savemat(path, emotic_annotations())

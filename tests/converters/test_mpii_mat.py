"""The MPII release reader on hand-built `.mat` files in the real layout, one quirk of docs/formats.md §10 each."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from focusclip.converters.mpii_mat import read_mpii_mat
from focusclip.core.errors import FocusError
from focusclip.core.report import Report
from focusclip.data.synthetic.mat_writer import write_mpii_mat
from focusclip.data.records import Annotation, Person, validate_annotation
from focusclip.pipeline.convert import annotation_row
from tests.converters.mat_fixtures import (EMPTY, TRAIN_RECT, expected_mpii, mpii_release, points, struct,
                                           struct_array, u8, u16, write_mpii)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    path = tmp_path_factory.mktemp("mpii") / "mpii_human_pose_v1_u12_1.mat"
    write_mpii(path)
    report = Report("convert")
    return [annotation_row(r) for r in read_mpii_mat(path, report)], report


@pytest.mark.parametrize("index", range(6))
def test_every_field_of_every_image(converted, index):
    rows, _ = converted
    assert len(rows) == 6
    assert rows[index] == expected_mpii()[index]
    assert validate_annotation(rows[index]) is None


def test_report_counts_the_quirks(converted):
    _, report = converted
    assert report.counts["joints_visibility_unknown"] == 3       # one empty is_visible + two missing
    assert report.counts["images_without_people"] == 1
    assert report.counts["train_images_without_keypoints"] == 2
    assert report.counts["people_without_center_or_scale"] == 2
    assert report.skipped == {"joint id outside 0..15": 1, "joint without x/y": 1,
                              "vididx outside video_list (video unknown)": 1,
                              "single_person id outside annorect": 1}


def test_single_image_release_is_squeezed_to_bare_structs(tmp_path):
    """With one image, annolist/img_train/act squeeze to scalars; the reader must still wrap them."""
    rel = mpii_release()["RELEASE"][0, 0]
    one = struct(annolist=rel["annolist"][:, 1:2], img_train=np.array([[1]], np.uint8), version="12",
                 single_person=np.array([[u8(1)]], dtype=object), act=rel["act"][1:2, :],
                 video_list=np.array([["aAOusnrSsHI"]], dtype=object))
    path = tmp_path / "one.mat"
    scipy.io.savemat(path, {"RELEASE": one})
    [rec] = read_mpii_mat(path)
    assert annotation_row(rec) == expected_mpii()[1]


def test_duplicate_joint_ids_keep_the_first(tmp_path):
    rect = struct_array(TRAIN_RECT, [(u16(1), u16(1), u16(9), u16(9),
                                      points([(u16(5), u16(6), u8(3), "1"), (u16(7), u16(8), u8(3), "0")]),
                                      EMPTY, EMPTY)])
    annolist = struct_array(("image", "annorect", "frame_sec", "vididx"), [(struct(name="a.jpg"), rect, EMPTY, EMPTY)])
    path = tmp_path / "dup.mat"
    scipy.io.savemat(path, {"RELEASE": struct(annolist=annolist, img_train=np.array([[1]], np.uint8))})
    report = Report("convert")
    [rec] = read_mpii_mat(path, report)
    assert rec.people[0].kpts[3] == [4.0, 5.0] and rec.people[0].kpts_vis[3] == 2
    assert report.skipped == {"duplicate joint id in one person (later point dropped)": 1}


def test_release_without_annolist_is_a_user_error(tmp_path):
    path = tmp_path / "x.mat"
    scipy.io.savemat(path, {"RELEASE": struct(version="12")})
    with pytest.raises(FocusError, match="annolist"):
        read_mpii_mat(path)


def _world() -> list[Annotation]:
    p = Person(id=0, center=[593.0, 256.0], scale=3.021046, head_box=[626.0, 67.0, 708.0, 232.0])
    p.kpts[8], p.kpts_vis[8] = [636.0201, 188.8183], 2
    p.kpts[0], p.kpts_vis[0] = [0.0, 0.0], 1
    q = Person(id=1, center=None, scale=None, head_box=None)  # nothing known, no joints
    t = Person(id=0, center=[10.5, 20.0], scale=1.25)
    return [Annotation(image="015601864.jpg", split="train", video_id="aAOusnrSsHI", video_frame=7,
                       activity_id=975, category="sports", activity="curling, light", single_person=[0],
                       people=[p, q]),
            Annotation(image="037454012.jpg", split="test", people=[t], single_person=[0]),
            Annotation(image="000000001.jpg", split="train", video_id="zz", video_frame=0)]


def test_writer_roundtrips_through_the_reader(tmp_path):
    path = tmp_path / "w.mat"
    world = _world()
    write_mpii_mat(path, world, video_list=["first", "aAOusnrSsHI"])
    back = read_mpii_mat(path)
    assert [annotation_row(r) for r in back] == [annotation_row(r) for r in world]


def test_writer_uses_the_release_layout(tmp_path):
    path = tmp_path / "w.mat"
    write_mpii_mat(path, [a.to_dict() for a in _world()], video_list=["first", "aAOusnrSsHI"])
    rel = scipy.io.loadmat(path)["RELEASE"]
    assert rel.shape == (1, 1)
    assert rel.dtype.names == ("annolist", "img_train", "version", "single_person", "act", "video_list")
    annolist = rel["annolist"][0, 0]
    assert annolist.shape == (1, 3) and annolist.dtype.names == ("image", "annorect", "frame_sec", "vididx")
    assert rel["img_train"][0, 0].tolist() == [[1, 0, 1]]
    assert rel["single_person"][0, 0].shape == (3, 1) and rel["act"][0, 0].shape == (3, 1)
    assert rel["video_list"][0, 0].shape == (1, 3)                   # "zz" appended
    train_rect, test_rect = annolist[0, 0]["annorect"], annolist[0, 1]["annorect"]
    assert train_rect.dtype.names == ("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")
    assert test_rect.dtype.names == ("scale", "objpos")
    assert annolist[0, 2]["annorect"].size == 0
    pt = train_rect[0, 0]["annopoints"][0, 0]["point"]
    assert pt.shape == (1, 2)
    assert pt[0, 0]["x"].dtype == np.uint16 and pt[0, 0]["x"][0, 0] == 1   # 1-based on disk
    assert pt[0, 1]["x"].dtype == np.float64 and pt[0, 1]["x"][0, 0] == pytest.approx(637.0201)
    assert [str(p["is_visible"][0]) for p in pt[0]] == ["0", "1"]
    assert annolist[0, 0]["vididx"][0, 0] == 2 and rel["act"][0, 0][1, 0]["act_id"][0, 0] == -1

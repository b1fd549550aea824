"""EMOTIC `Annotations.mat` in its real layout: train vs val/test person fields, squeezed cases."""
from __future__ import annotations

import pytest
import scipy.io

from focusclip.converters.emotic import CATEGORIES, read_emotic
from focusclip.core.errors import FocusError
from focusclip.core.report import Report
from tests.converters.mat_fixtures import emotic_annotations, expected_emotic, write_emotic


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    path = tmp_path_factory.mktemp("emotic") / "Annotations.mat"
    write_emotic(path)
    report = Report("convert-emotic")
    return read_emotic(path, report), report


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_field_of_every_person(converted, split):
    got, _ = converted
    assert got[split] == expected_emotic()[split]


def test_report(converted):
    _, report = converted
    assert report.counts["train_people"] == 3 and report.counts["train_images"] == 2
    assert report.counts["body_boxes_clamped"] == 2
    assert report.counts["people_with_missing_vad"] == 1
    assert report.counts["people_without_categories"] == 1
    assert not report.skipped


def test_categories_are_the_26_in_index_order():
    assert len(CATEGORIES) == 26 and CATEGORIES[9] == "Doubt/Confusion" and CATEGORIES[8] == "Disquietment"


def test_missing_split_variable_is_a_user_error(tmp_path):
    data = emotic_annotations()
    del data["val"]
    path = tmp_path / "Annotations.mat"
    scipy.io.savemat(path, data)
    with pytest.raises(FocusError, match="no variable val .*found: test, train"):
        read_emotic(path)

"""Bad input and failures of `run_publish`: one-line user errors, and never a partial folder."""
from __future__ import annotations

import pytest

from focusclip.core.errors import FocusError
from focusclip.pipeline.publish.stage import PublishOptions, run_publish
from tests.pipeline.publish.test_publish import (GPT, IMAGES_TRAIN, IMAGES_VAL, TEMPLATE, _desc, make_inputs, make_media,
                                         write_jsonl)


def test_a_failure_mid_build_leaves_no_folder(tmp_path, monkeypatch):
    import focusclip.pipeline.publish.stage as publish

    inputs = make_inputs(tmp_path / "in")
    calls = []

    def broken(rows, feats, root, config, split, max_bytes):
        calls.append(split)
        (root / config).mkdir(parents=True, exist_ok=True)
        (root / config / "half-written.parquet").write_bytes(b"PAR1")
        raise OSError("disk full")

    monkeypatch.setattr(publish, "write_split", broken)
    with pytest.raises(OSError, match="disk full"):
        run_publish(PublishOptions(inputs["annotations"], {GPT: inputs["descriptions"][GPT]}, tmp_path / "out"))
    assert calls == ["train"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize("case, match", [
    ("unmatched", "none of its 2 descriptions is of an image in the annotations"),
    ("bad_name", "config name 'gpt 4o' is not valid on the hub"),
    ("reserved", "config name 'data' is not valid on the hub"),
    ("missing_ann", "annotations file not found"),
    ("not_ours", "was not made by `focus-data publish`"),
    ("no_images", "2 image or heatmap files are missing"),
    ("missing_descriptions", "descriptions file not found"),
    ("push_without_repo", "--push needs a repository"),
    ("bad_repo_id", "--repo-id 'no-namespace' is not a hub repo id"),
    ("bad_shard_size", "--max-shard-size 'huge' is not a size"),
    ("images_without_flag", "--images/--heatmaps are only used with --with-images"),
    ("case_clash", "config name 'GPT-4o-Mini' is given twice"),
    ("not_descriptions", "this is an annotations file (written by `focus-data convert`), not descriptions"),
])
def test_bad_inputs_are_one_line_user_errors_and_leave_nothing(tmp_path, case, match):
    inputs = make_inputs(tmp_path / "in")
    ann, descs, out = inputs["annotations"], {GPT: inputs["descriptions"][GPT]}, tmp_path / "out"
    kw = {}
    if case == "unmatched":
        write_jsonl(descs[GPT], [_desc("111.jpg", GPT, "a"), _desc("222.jpg", GPT, "b")])
    elif case in ("bad_name", "reserved"):
        descs = {"gpt 4o" if case == "bad_name" else "data": descs[GPT]}
    elif case == "missing_ann":
        ann = tmp_path / "in" / "nope.jsonl"
    elif case == "not_ours":
        out.mkdir()
        (out / "precious.txt").write_text("keep me")
        kw["force"] = True
    elif case == "no_images":
        img_dir, _ = make_media(tmp_path / "in", IMAGES_TRAIN + IMAGES_VAL)
        (img_dir / IMAGES_VAL[1]).unlink()
        (img_dir / IMAGES_TRAIN[2]).unlink()
        kw.update(with_images=True, images_dir=img_dir)
    elif case == "missing_descriptions":
        descs = {GPT: tmp_path / "absent.jsonl"}
    elif case == "push_without_repo":
        kw["push"] = True
    elif case == "bad_repo_id":
        kw["repo_id"] = "no-namespace"
    elif case == "bad_shard_size":
        kw["max_shard_size"] = "huge"
    elif case == "images_without_flag":
        kw["images_dir"] = tmp_path
    elif case == "case_clash":
        descs = {GPT: descs[GPT], "GPT-4o-Mini": inputs["descriptions"][TEMPLATE]}
    elif case == "not_descriptions":
        descs = {GPT: inputs["annotations"]}
    with pytest.raises(FocusError, match=match.replace("(", r"\(").replace(")", r"\)")) as e:
        run_publish(PublishOptions(ann, descs, out, **kw))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out.incomplete").exists()
    if case == "not_ours":
        assert (out / "precious.txt").read_text() == "keep me"
    else:
        assert not out.exists()

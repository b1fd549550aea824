"""The `reasoning` check: a reasoning model's thinking left in a description is rejected with its reason,
through describe (a loopback server whose model is cut off while thinking) and filter."""
from __future__ import annotations

import pytest

from focusclip.core.io import read_jsonl
from focusclip.data.records import write_annotations
from focusclip.pipeline.filter import run_filter
from focusclip.pipeline.filter.checks import CheckContext, FilterConfig, check_reasoning
from tests.pipeline.describe.test_describe import random_annotations
from tests.pipeline.describe.test_describe_openai import SECRET, describe, server_factory  # noqa: F401 (fixture)

ANSWER = "There is one person in the image. They are standing with both arms lowered."


@pytest.mark.parametrize("text, found", [
    ("<think>\nCount the people first.", "<think>"),
    ("Count the people first.</think> " + ANSWER, "</think>"),
    ("<thinking>hmm</thinking> " + ANSWER, "<thinking>"),
    ("<|channel|>analysis<|message|>hmm", "<|channel|>"),
    (ANSWER, None),
    ("They think the person is standing.", None),
])
def test_reasoning_markup_is_found(text, found):
    ctx = CheckContext(annotation=random_annotations(1)[0], config=FilterConfig())
    reason = check_reasoning({"description": text}, ctx)
    assert (reason is None) == (found is None)
    if found:
        assert reason == f"reasoning text: {found!r} at character {text.index(found)}"


def test_an_answer_cut_off_while_thinking_is_kept_by_describe_and_rejected_by_filter(server_factory, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = server_factory(think="<think>\nThe facts say one person, standing; ")   # never closed
    anns = random_annotations(3)
    desc = tmp_path / "think.jsonl"
    describe(anns, desc, server)
    assert all(r["description"].startswith("<think>") for r in read_jsonl(desc))
    write_annotations(tmp_path / "annotations.jsonl", anns)
    report = run_filter(desc, tmp_path / "annotations.jsonl", tmp_path / "think.kept.jsonl")
    assert report.extra["rejected_by_reason"] == {"reasoning": 3}
    assert {r["reason_detail"] for r in read_jsonl(tmp_path / "think.kept.rejected.jsonl")} == \
        {"reasoning text: '<think>' at character 0"}

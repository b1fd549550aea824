"""`--structured`: the JSON schema reaches the server as response_format and vLLM as structured_outputs,
the record keeps the prose and the people apart, and the filter checks the people against the keypoints."""
from __future__ import annotations

import json
import sys
import types
from types import SimpleNamespace

import pytest

from focusclip.core.errors import FocusError
from focusclip.core.io import read_jsonl, write_jsonl
from focusclip.data.records import write_annotations
from focusclip.pipeline.describe.stage import DescribeOptions, run_describe
from focusclip.pipeline.describe.structured import parse_answer
from focusclip.pipeline.describe.types import GenParams
from focusclip.pipeline.filter.stage import run_filter
from tests.pipeline.describe.test_describe import describe_flat
from tests.pipeline.describe.test_describe_vlm import VLMServer, synthetic
from tests.pipeline.filter.test_filter_vlm import GOOD, _annotation

STANDING = [{"label": "the person on the left", "posture": "standing", "left_arm": "lowered", "right_arm": "lowered"},
            {"label": "the person on the right", "posture": "standing", "left_arm": "lowered",
             "right_arm": "lowered"}]


def valid(value, schema) -> bool:
    """The JSON-schema subset the describe schema uses: type object/array/string, enum, required,
    additionalProperties false (written here, not taken from the code under test)."""
    if "enum" in schema:
        return value in schema["enum"]
    kind = schema["type"]
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list) and all(valid(v, schema["items"]) for v in value)
    props = schema["properties"]
    return isinstance(value, dict) and set(schema["required"]) <= set(value) and \
        (schema.get("additionalProperties", True) or set(value) <= set(props)) and \
        all(valid(v, props[k]) for k, v in value.items() if k in props)


def test_the_schema_reaches_the_server_and_the_record_keeps_prose_and_people(tmp_path):
    folder, anns = synthetic(tmp_path)
    answer = {"people": STANDING, "description": GOOD}
    server = VLMServer(lambda body: json.dumps(answer))
    try:
        describe_flat(anns, tmp_path / "s.jsonl", backend="openai", model="vlm", base_url=server.url,
                      prompt_id="pose-vlm-v1", images=folder, structured=True)
    finally:
        server.close()
    body, = server.bodies
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    person = schema["properties"]["people"]["items"]["properties"]
    assert person["posture"]["enum"] == ["standing", "sitting", "kneeling", "lying", "unclear"]
    assert person["left_arm"]["enum"] == ["raised above the head", "raised", "horizontal", "lowered", "unclear"]
    assert valid(answer, schema) and not valid({"people": [{**STANDING[0], "posture": "crouching"}],
                                                "description": GOOD}, schema)
    assert '"posture"' in body["messages"][-1]["content"][-1]["text"]   # the prompt asks for it too
    rec, = read_jsonl(tmp_path / "s.jsonl")
    assert rec["description"] == GOOD and rec["structured"] == STANDING


@pytest.mark.parametrize("text,why", [("There are two people.", "not JSON"),
                                      (json.dumps({"people": [{**STANDING[0], "posture": "crouching"}],
                                                   "description": GOOD}), "posture is 'crouching'"),
                                      (json.dumps({"people": STANDING}), "description")])
def test_an_answer_the_schema_does_not_allow_fails_and_writes_nothing(tmp_path, text, why):
    folder, anns = synthetic(tmp_path)
    server = VLMServer(lambda body: text)
    try:
        with pytest.raises(FocusError, match="no image could be described"):
            describe_flat(anns, tmp_path / "s.jsonl", backend="openai", model="vlm", base_url=server.url,
                          prompt_id="pose-vlm-v1", images=folder, structured=True)
    finally:
        server.close()
    assert not (tmp_path / "s.jsonl").exists()
    assert why in parse_answer(text)


def test_offline_vllm_gets_structured_outputs_with_the_schema(monkeypatch, tmp_path):
    from focusclip.pipeline.describe import local
    from focusclip.pipeline.describe.structured import SCHEMA
    from tests.pipeline.describe.fake_vllm import FakeVLLM, SamplingParams

    monkeypatch.setattr(local, "ENGINES", local._Engines())
    fake = FakeVLLM(monkeypatch)
    seen = []

    class StructuredOutputsParams:   # vllm.sampling_params.StructuredOutputsParams(json=…), 0.11 on
        def __init__(self, json=None):
            self.json = json

    class Params(SamplingParams):
        _DEFAULTS = {**SamplingParams._DEFAULTS, "structured_outputs": None}

    class LLM(fake.module.LLM):
        def chat(self, messages, sampling_params=None, **kwargs):
            seen.extend(sampling_params)
            return [SimpleNamespace(prompt_token_ids=[1] * 50, outputs=[SimpleNamespace(
                text=json.dumps({"people": STANDING, "description": GOOD}), token_ids=[2] * 9,
                finish_reason="stop")]) for _ in messages]

    module = types.ModuleType("vllm.sampling_params")
    module.StructuredOutputsParams = StructuredOutputsParams
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", module)
    fake.module.LLM, fake.module.SamplingParams = LLM, Params
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    folder, anns = synthetic(tmp_path)
    run_describe(DescribeOptions(None, tmp_path / "v.jsonl", backend="vllm", model=str(model),
                                 prompt_id="pose-vlm-v1", images=folder, gen=GenParams(structured=True)),
                 records=anns, progress=False)
    assert seen[0].structured_outputs.json == SCHEMA
    rec, = read_jsonl(tmp_path / "v.jsonl")
    assert rec["structured"] == STANDING and rec["description"] == GOOD


@pytest.mark.parametrize("people,text,reason", [
    (STANDING, GOOD, None),
    ([{**STANDING[0], "posture": "sitting"}, STANDING[1]], GOOD, "structured person 1 is 'sitting'"),
    ([{**STANDING[0], "left_arm": "raised above the head"}, STANDING[1]], GOOD,
     "structured person 1's left arm"),
    (STANDING[:1], GOOD, "lists 1 people"),
    # person 2's arms are not annotated: only the structure can contradict the prose's "both arms lowered"
    ([STANDING[0], {**STANDING[1], "left_arm": "raised above the head", "right_arm": "raised above the head"}],
     GOOD, "the prose contradicts the structured answer"),
])
def test_the_filter_checks_the_structure_against_the_keypoints(tmp_path, people, text, reason):
    ann = _annotation("a.jpg")
    arms = range(10, 16)   # MPII wrists, elbows, shoulders
    ann.people[1].kpts_vis = [0 if j in arms else v for j, v in enumerate(ann.people[1].kpts_vis)]
    write_annotations(tmp_path / "ann.jsonl", [ann])
    write_jsonl(tmp_path / "d.jsonl", [{"image": "a.jpg", "describer": "vlm", "backend": "openai",
                                        "description": text, "prompt_id": "pose-vlm-v1", "prompt_sha": "x",
                                        "finish_reason": "stop", "structured": people}])
    run_filter(tmp_path / "d.jsonl", tmp_path / "ann.jsonl", tmp_path / "k.jsonl")
    rejected = list(read_jsonl(tmp_path / "k.rejected.jsonl"))
    if reason is None:
        assert rejected == [] and len(list(read_jsonl(tmp_path / "k.jsonl"))) == 1
    else:
        assert rejected[0]["reason"] in ("structured", "posture") and reason in rejected[0]["reason_detail"], \
            rejected[0]

"""The offline `vllm` backend with an image-grounded prompt: `LLM.chat` gets the same image parts as the
OpenAI request, and the engine takes one image per prompt."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from focusclip.core.io import read_jsonl
from focusclip.pipeline.describe.stage import DescribeOptions, run_describe
from focusclip.pipeline.describe.types import GenParams
from tests.pipeline.describe.fake_vllm import FakeVLLM
from tests.pipeline.describe.test_describe_vlm import check_picture, sent_picture, synthetic


@pytest.fixture
def fake(monkeypatch):
    from focusclip.pipeline.describe import local

    monkeypatch.setattr(local, "ENGINES", local._Engines())
    fake = FakeVLLM(monkeypatch)
    fake.conversations = []
    base = fake.module.LLM

    class VisionLLM(base):   # vLLM's chat takes content parts; the text-only fake counts words of strings
        def chat(self, messages, sampling_params=None, use_tqdm=True, chat_template_kwargs=None, **kwargs):
            fake.conversations.extend(messages)
            return [SimpleNamespace(prompt_token_ids=[1] * 50, outputs=[SimpleNamespace(
                text="There is one person in the image.", token_ids=[2] * 9, finish_reason="stop")])
                for _ in messages]

    fake.module.LLM = VisionLLM
    return fake


@pytest.fixture
def model_dir(tmp_path):
    model = tmp_path / "Qwen2.5-VL-3B-Instruct"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "generation_config.json").write_text(json.dumps({"temperature": 0.7}))
    return model


@pytest.mark.parametrize("url", ["data", "file"])
def test_llm_chat_gets_the_marked_picture_and_one_image_per_prompt(fake, model_dir, tmp_path, url):
    folder, anns = synthetic(tmp_path)
    out = tmp_path / "v.jsonl"
    run_describe(DescribeOptions(None, out, backend="vllm", model=str(model_dir), prompt_id="pose-vlm-v1",
                                 images=folder, mark="number", image_url=url, gen=GenParams()),
                 records=anns, progress=False)
    engine, = fake.engines
    assert engine["limit_mm_per_prompt"] == {"image": 1}
    conversation, = fake.conversations
    if url == "data":
        check_picture(sent_picture({"messages": conversation}), folder / "synthetic.jpg", anns[0], 768, "number")
        assert "allowed_local_media_path" not in engine
    else:
        part, = [p for p in conversation[-1]["content"] if p["type"] == "image_url"]
        assert part["image_url"]["url"].startswith((tmp_path / "v.marked").resolve().as_uri() + "/")
        assert engine["allowed_local_media_path"] == str((tmp_path / "v.marked").resolve())
    rec, = read_jsonl(out)
    assert rec["prompt_id"] == "pose-vlm-v1"


def test_a_text_prompt_asks_for_no_image_slots(fake, model_dir, tmp_path):
    folder, anns = synthetic(tmp_path)
    run_describe(DescribeOptions(None, tmp_path / "t.jsonl", backend="vllm", model=str(model_dir), images=folder),
                 records=anns, progress=False)
    assert "limit_mm_per_prompt" not in fake.engines[0]
    assert isinstance(fake.conversations[0][-1]["content"], str)

"""The `transformers` backend with an image-grounded prompt, on a tiny LLaVA built here (a 1-layer CLIP
vision tower on 56-px crops, a 1-layer Llama, a word-level tokenizer): `AutoModelForImageTextToText`
with its processor's chat template, on CPU."""
from __future__ import annotations

import json

import pytest

from focusclip.core.io import read_jsonl
from focusclip.prompts import build_prompt
from focusclip.prompts.picture import PictureSpec
from tests.pipeline.describe.test_describe import describe_flat, random_annotations
from tests.pipeline.describe.test_describe_vlm import mpii, synthetic

# LLaVA's chat template reduced to its shape: text parts in order, <image> where the image part is
TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {% if m['content'] is string %}{{ m['content'] }}"
            "{% else %}{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>"
            "{% else %}{{ p['text'] }}{% endif %} {% endfor %}{% endif %} {% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")
CROP, PATCH = 56, 14
IMAGE_TOKENS = (CROP // PATCH) ** 2   # LLaVA's processor: one token per patch, the CLS feature dropped


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llava")
    spec = PictureSpec(path)
    prompts = [build_prompt(a, "pose-vlm-v1", picture=spec) for a in random_annotations(20)]
    corpus = [f"{p.system} {p.user}" for p in prompts] + ["<system> <user> <assistant> There"]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["<pad>", "<eos>", "<unk>", "<image>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    images = CLIPImageProcessorPil(size={"shortest_edge": CROP}, crop_size={"height": CROP, "width": CROP})
    LlavaProcessor(image_processor=images, tokenizer=fast, chat_template=TEMPLATE, patch_size=PATCH,
                   vision_feature_select_strategy="default", image_token="<image>",
                   num_additional_image_tokens=1).save_pretrained(path)
    ids = {t: fast.convert_tokens_to_ids(t) for t in ("<pad>", "<eos>", "<image>")}
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=CROP, patch_size=PATCH, projection_dim=32),
        text_config=LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                max_position_embeddings=4096, eos_token_id=ids["<eos>"], bos_token_id=ids["<eos>"],
                                pad_token_id=ids["<pad>"]),
        image_token_id=ids["<image>"], vision_feature_layer=-1, vision_feature_select_strategy="default")
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = ids["<eos>"], ids["<pad>"]
    model.save_pretrained(path)
    return path


def _run(tiny_vlm, anns, folder, out, **kw):
    describe_flat(anns, out, backend="transformers", model=str(tiny_vlm), prompt_id="pose-vlm-v1", images=folder,
                  device="cpu", max_tokens=6, temperature=0, concurrency=2, **kw)
    return list(read_jsonl(out))


def test_the_model_sees_the_marked_picture_and_the_record_counts_its_tokens(tiny_vlm, tmp_path, monkeypatch):
    from focusclip.prompts import picture

    folder, anns = synthetic(tmp_path)
    seen = []
    real = picture.Picture.pil
    monkeypatch.setattr(picture.Picture, "pil", lambda self: seen.append(self) or real(self))
    rec, = _run(tiny_vlm, anns, folder, tmp_path / "t.jsonl", mark="skeleton")
    assert [p.annotation.image for p in seen] == ["synthetic.jpg"] and seen[0].spec.mark == "skeleton"
    assert rec["prompt_sha"] == build_prompt(anns[0], "pose-vlm-v1", picture=seen[0].spec).sha
    assert rec["usage"]["image_tokens"] == IMAGE_TOKENS
    assert rec["usage"]["prompt_tokens"] > IMAGE_TOKENS and rec["description"]
    report = json.loads((tmp_path / "t.report.json").read_text())
    assert report["usage"]["image_tokens"] == IMAGE_TOKENS


def test_the_real_samples_are_described_with_the_prompts_hash(tiny_vlm, tmp_path, mpii_samples):
    anns = mpii(mpii_samples)
    recs = _run(tiny_vlm, anns, mpii_samples, tmp_path / "m.jsonl")
    spec = PictureSpec(mpii_samples)
    assert {r["image"]: r["prompt_sha"] for r in recs} == \
        {a.image: build_prompt(a, "pose-vlm-v1", picture=spec).sha for a in anns}
    assert all(r["usage"]["image_tokens"] == IMAGE_TOKENS and r["backend"] == "transformers" for r in recs)

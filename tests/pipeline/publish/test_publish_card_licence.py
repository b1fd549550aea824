"""The dataset card's licence, built through the real `focus-data publish`: its `license` field and its
"Licence and terms" section against the source's terms (MPII's annotations and images, as
`focus-data download --list` states them, and each describer's provider)."""
from __future__ import annotations

from huggingface_hub import DatasetCard

from focusclip.pipeline.download.catalog import MPII
from tests.pipeline.publish.test_publish import (GPT, IMAGES_TEST, IMAGES_TRAIN, IMAGES_VAL, TEMPLATE,
                                                 description_records, make_inputs, make_media, write_jsonl)
from tests.pipeline.publish.test_publish_cli import focus_data

QWEN = "Qwen2.5-7B-Instruct"


def section(card: DatasetCard, title: str) -> str:
    body = card.text
    start = body.index(f"## {title}\n")
    end = body.find("\n## ", start + 1)
    return body[start:end if end > 0 else None]


def publish(tmp_path, *extra: str) -> DatasetCard:
    inputs = make_inputs(tmp_path / "in")
    # A third describer, a hub model run locally, from the GPT records with its own provenance.
    qwen = [{**r, "describer": QWEN, "backend": "vllm", "model": f"Qwen/{QWEN}"} for r in description_records()[GPT]]
    qwen_file = write_jsonl(tmp_path / "in" / "descriptions" / f"{QWEN}.kept.jsonl", qwen)
    out = tmp_path / "out"
    done = focus_data("--annotations", str(inputs["annotations"]), "-o", str(out),
                      "--descriptions", f"{GPT}={inputs['descriptions'][GPT]}",
                      "--descriptions", f"{TEMPLATE}={inputs['descriptions'][TEMPLATE]}",
                      "--descriptions", f"qwen={qwen_file}", *extra, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    return DatasetCard.load(out / "README.md")


def test_card_without_images_declares_the_annotations_licence_and_states_every_term(tmp_path):
    card = publish(tmp_path)
    # The files hold MPII's annotations and the descriptions: the Simplified BSD licence MPII releases
    # the annotations under, as the original MPII Human Pose Captions dataset declares it.
    assert card.data.license == "bsd-2-clause"
    assert card.data.to_dict().get("license_name") is None
    terms = section(card, "Licence and terms")
    assert "Simplified BSD License (BSD-2-Clause)" in terms
    assert "`license: bsd-2-clause` covers them and the descriptions, not the images" in terms
    # The images' terms, word for word as `focus-data download --list` gives them, and where to get them.
    assert MPII.licence.startswith("research only, no commercial use")
    assert f"**MPII images**: {MPII.licence}" in terms
    assert "**not included**" in terms and "http://human-pose.mpi-inf.mpg.de/" in terms
    # Each describer named once, with the terms its output may carry.
    lines = [line.strip() for line in terms.splitlines() if line.startswith("  - ")]
    assert len(lines) == 3, terms
    openai, = [line for line in lines if line.startswith(f"- `{GPT}`")]
    assert "OpenAI-compatible API" in openai and "https://openai.com/policies/terms-of-use" in openai
    local, = [line for line in lines if line.startswith(f"- `{QWEN}` (model `Qwen/{QWEN}`)")]
    assert "run with `vllm`" in local and f"https://huggingface.co/Qwen/{QWEN}" in local
    template, = [line for line in lines if line.startswith(f"- `{TEMPLATE}`")]
    assert "no language model" in template
    assert "## License\n" not in card.text      # one licence section, not two


def test_card_with_images_is_not_declared_bsd(tmp_path):
    """A folder holding MPII's research-only images cannot carry the annotations' BSD licence alone."""
    img_dir, hm_dir = make_media(tmp_path / "in", IMAGES_TRAIN + IMAGES_VAL + IMAGES_TEST)
    card = publish(tmp_path, "--with-images", "--images", str(img_dir))
    meta = card.data.to_dict()
    assert (meta["license"], meta["license_name"], meta["license_link"]) == \
        ("other", "mpii-images-research-only", MPII.page)
    terms = section(card, "Licence and terms")
    assert f"**MPII images**: {MPII.licence}" in terms and "**included** in this copy" in terms
    assert "non-commercial research only, and do not redistribute it" in terms

"""The model card (`README.md`) of a checkpoint / pushed model: hub YAML metadata (`model-index` for
zero-shot results) and a body naming the base towers and their sources, the training data and its
describers, the resolved training config, the results, intended use, limitations and license.

Written from the model's `FocusCLIPConfig` (its `provenance` says where things came from), the
checkpoint's `train_config.yaml` and, when given, a `focus-eval` results.json. Parses with
`huggingface_hub.ModelCard`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from focusclip.data.citations import FOCUSCLIP_BIBTEX
from focusclip.core.hub_repo import is_repo_id, names_hub_repo

# library_name is focusclip: transformers alone cannot load model_type "focusclip" (the hub takes any name)
TAGS = ["focusclip", "transformers", "clip", "contrastive-learning", "human-pose", "zero-shot-image-classification", "mpii"]
PIPELINE = "zero-shot-image-classification"

INTENDED = """\
## Intended use

Zero-shot classification and retrieval of *human-centric* images — activities, emotions, age groups —
by comparing image and text embeddings, and as an image or text encoder to fine-tune, for research.
At inference the model is plain CLIP: the heatmap branch is only used in training."""

LIMITATIONS = """\
## Limitations

- Trained on the MPII Human Pose images (mostly YouTube frames of everyday and sports activities)
  with machine-written descriptions: it inherits their biases and errors, and knows little outside
  people and their activities.
- Age, emotion and race predictions from appearance are unreliable for individuals and can be
  harmful; report them only as aggregate benchmark numbers.
- Zero-shot accuracy depends on the prompt templates; the numbers above use the paper's single
  template per task unless the results say otherwise.
- Not for surveillance, identification of people, or decisions about individuals."""

LOCAL = "<local>"
# train_config.yaml keys naming a file or folder of the training machine (training/config.py)
PATH_KEYS = {"data.dataset", "data.annotations", "data.images", "data.heatmaps", "data.prepared",
             "model.vision.pretrained", "model.text.pretrained", "output_dir"}
NOT_PATHS = {"render", "embedded"}   # data.heatmaps' keywords

_CITATION = f"## Citation\n\n```bibtex\n{FOCUSCLIP_BIBTEX}\n```"


def hub_ids_in(note: Any) -> list[str]:
    """Hub ids a provenance note names: a source dict (`{"kind": "hub", "name": ID}`, as
    `focusclip.core.hub.Source.to_dict` writes), a dict's `hub_id`/`repo_id`/`id`, or "pretrained USER/NAME"."""
    if isinstance(note, dict):
        if note.get("kind") == "hub" and isinstance(note.get("name"), str) and is_repo_id(note["name"]):
            return [note["name"]]
        return [v for k in ("hub_id", "repo_id", "id") if isinstance(v := note.get(k), str) and is_repo_id(v)]
    if isinstance(note, str) and note.startswith("pretrained "):
        word = note.split()[1]
        return [word] if is_repo_id(word) else []
    return []


def hub_dataset(value: Any) -> Optional[str]:
    """`value` when it names a hub dataset (USER/NAME and no such local path: `out/published` is a folder)."""
    return value if isinstance(value, str) and names_hub_repo(value) else None


def public_path(value: str) -> str:
    """A path of the training machine as the card shows it: `<local>/NAME`; hub ids and keywords kept."""
    return value if value in NOT_PATHS or names_hub_repo(value) else f"{LOCAL}/{Path(value).name}"


def public_train_config(text: str) -> tuple[str, list[str]]:
    """The train_config.yaml with every local path (the PATH_KEYS, and any other absolute or home path)
    made `<local>/NAME`; and the dotted keys so changed."""
    raw = yaml.safe_load(text)
    changed: list[str] = []

    def walk(node: Any, key: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, str) and (key in PATH_KEYS or node.startswith(("/", "~"))) and public_path(node) != node:
            changed.append(key)
            return public_path(node)
        return node

    if not isinstance(raw, dict):
        return text, []
    public = walk(raw, "")
    return yaml.safe_dump(public, sort_keys=False, allow_unicode=True), sorted(set(changed))


def _note(note: Any) -> str:
    if isinstance(note, dict) and "kind" in note:   # a focusclip.core.hub.Source
        kind, name = note["kind"], note.get("name")
        if kind == "hub":
            commit = f", commit {note['commit'][:12]}" if note.get("commit") else ""
            return f"`{name}` from the Hugging Face hub (revision {note.get('revision') or 'main'}{commit})"
        if kind == "folder":
            return f"a local folder (`{public_path(str(name))}`)"
        return note.get("note") or ("random init" if kind == "random" else kind)
    if isinstance(note, dict):
        return ", ".join(f"{k} `{v}`" for k, v in note.items() if v is not None) or "unknown"
    return str(note) if note else "not recorded"


def eval_results(results: dict, model_name: str) -> list[EvalResult]:
    """`model-index` entries: one per task that ran, its top-k accuracy in percent."""
    out = []
    for task_id, t in (results.get("tasks") or {}).items():
        if t.get("status") != "ok":
            continue
        out.append(EvalResult(task_type=PIPELINE, task_name="Zero-shot image classification",
                              dataset_type=str(t.get("dataset") or task_id), dataset_name=task_id,
                              dataset_split=t.get("split"), metric_type="accuracy",
                              metric_name=f"top-{t.get('k', 1)} accuracy", metric_value=round(100 * t["topk"], 2)))
    return out


def results_section(results: Optional[dict]) -> str:
    if not results:
        return ("## Zero-shot results\n\nNot evaluated yet: `focus-eval CHECKPOINT --data-root DIR -o results.json`, "
                "then `focus-train push CHECKPOINT --repo-id ID --results results.json` puts the table here.")
    lines = ["## Zero-shot results", "", f"`focus-eval` on the human-centric tasks (model `{results.get('model')}`).",
             "", "| task | dataset | split | metric | accuracy (%) | images |",
             "| --- | --- | --- | --- | ---: | ---: |"]
    for task_id, t in (results.get("tasks") or {}).items():
        if t.get("status") == "ok":
            lines.append(f"| {task_id} | {t.get('dataset')} | {t.get('split')} | top-{t.get('k')} | "
                         f"{100 * t['topk']:.2f} | {t.get('n')} |")
        else:
            lines.append(f"| {task_id} | {t.get('dataset', '')} | {t.get('split', '')} | | {t.get('status')} | |")
    if results.get("mean") is not None:
        lines += ["", f"Mean top-k over the tasks that ran: **{100 * results['mean']:.2f}%**."]
    return "\n".join(lines)


_GEOMETRY = {"squash": "the whole frame resized to the training size (aspect ratio not kept)",
             "letterbox": "the whole frame fitted into the training size, padded",
             "crop": "shorter side resized to the training size, centre crop"}


def vision_architecture(v: dict) -> str:
    """"ViT, hidden 64, 2 layers, patch 8" and, for a `focusclip_vit` tower, its stem and readout."""
    text = f"ViT, hidden {v.get('hidden_size')}, {v.get('num_hidden_layers')} layers, patch {v.get('patch_size')}"
    if v.get("stem") == "conv":
        text += f" as 3×3 stride-2 convolutions (widths {v.get('stem_channels')}, batch norm)"
    if v.get("pooling") == "mean":
        text += ", read out as the mean of the patch tokens"
    return text


def model_section(config, resize: str = "crop") -> str:
    v, t, p = config.vision, config.text, config.provenance or {}
    kind = "FocusCLIP (image, text and heatmap-weighted image)" if config.triple else "CLIP baseline (image and text)"
    base = getattr(config, "base", None)
    if base:   # model.init: a whole dual encoder, its own towers (training/model.py)
        v, t = base.get("vision_config") or {}, {**(base.get("text_config") or {}), "model_type": base.get("model_type")}
        kind += f", fine-tuned from a `{base.get('model_type')}` dual encoder"
    return "\n".join([
        "## Model", "", f"{kind}, embeddings of {config.embed_dim} dimensions, NT-Xent temperature "
        f"{config.contrastive_temperature:g}, trained at {config.image_size}×{config.image_size} pixels.", "",
        "| tower | architecture | initial weights |", "| --- | --- | --- |",
        f"| image | {vision_architecture(v)} | {_note(p.get('vision'))} |",
        f"| text | {t.get('model_type', 'bert')}, hidden {t.get('hidden_size')}, {t.get('num_hidden_layers')} layers, "
        f"vocabulary {t.get('vocab_size')} | {_note(p.get('text'))} |",
        f"| tokenizer | | {_note(p.get('tokenizer'))} |", "",
        f"Images: RGB, {_GEOMETRY.get(resize, resize)} (`data.resize: {resize}`), scaled to [0, 1] and normalised with "
        f"mean {list(config.image_mean)} and std {list(config.image_std)}. Texts: at most {config.max_text_length} "
        "tokens; the text embedding is the mean of the token states over the attention mask, projected."])


def data_section(provenance: dict, train_yaml: Optional[dict]) -> str:
    data = (train_yaml or {}).get("data") or {}
    dataset = provenance.get("dataset") or data.get("dataset")
    dataset = (f"[{dataset}](https://huggingface.co/datasets/{dataset})" if hub_dataset(dataset)
               else f"`{public_path(str(dataset))}` on the training machine" if dataset else "not recorded")
    describers = provenance.get("describers") or {}
    lines = ["## Training data", "", f"Dataset: {dataset} (MPII Human Pose images with pose descriptions, "
             "built with `focus-data`: annotations, ROI heatmaps, descriptions, filter, publish)."]
    if describers:
        lines += ["", "| describer | descriptions |", "| --- | ---: |"]
        lines += [f"| {name} | {n} |" for name, n in describers.items()]
    for key, label in (("train_images", "training images"), ("val_images", "validation images")):
        if provenance.get(key) is not None:
            lines.append(f"\n{label.capitalize()}: {provenance[key]}.")
    return "\n".join(lines)


INSTALL = ("focusclip is not on PyPI: install it from its source repository (`pip install -e .` in a clone). "
           "`import focusclip.training.model` registers `model_type: focusclip` with transformers; without it "
           "`AutoModel` does not know the model.")


def usage_section(repo_id: Optional[str], config, resize: str = "crop") -> str:
    """The snippet runs as written (tests/training/test_card_snippet.py runs it) next to an image `person.jpg`."""
    where = repo_id or "path/to/checkpoint"
    processor = ("The saved image processor (`preprocessor_config.json`) resizes as training did." if resize != "letterbox"
                 else "The saved image processor squashes the frame to the training size; training letterboxed it "
                      "(padded), which no transformers image processor does: for those exact pixels use "
                      "`focusclip.training.load_checkpoint(PATH).preprocess(image)`.")
    return "\n".join([
        "## How to use", "", INSTALL, "", "```python", "import torch",
        "from PIL import Image", "from transformers import AutoModel, AutoProcessor", "",
        "import focusclip.training.model  # registers model_type 'focusclip' with transformers", "",
        f'model = AutoModel.from_pretrained("{where}").eval()',
        f'processor = AutoProcessor.from_pretrained("{where}")   # the image processor and tokenizer saved with it',
        'texts = ["a person riding a bike", "a person cooking"]',
        'inputs = processor(text=texts, images=[Image.open("person.jpg")], padding=True, truncation=True,',
        f'                   max_length={config.max_text_length}, return_tensors="pt")',
        "with torch.no_grad():",
        f'    image = model.encode_image(inputs["pixel_values"])   # [1, D], unit norm; pixels [1, 3, {config.image_size}, {config.image_size}]',
        '    text = model.encode_text(inputs["input_ids"], inputs["attention_mask"])   # [2, D], unit norm',
        "print(dict(zip(texts, (image @ text.T)[0].tolist())))   # cosine similarity per text",
        "```", "", processor, "",
        f"Or evaluate it: `focus-eval {where} --data-root DIR -o results.json`. "
        "`get_image_features` / `get_text_features` give the projections before normalising, as in `CLIPModel`."])


def license_section(license_id: str) -> str:
    chosen = "not chosen by the publisher (`other`)" if license_id == "other" else f"`{license_id}`"
    return ("## License\n\n"
            f"License of these weights: {chosen}. They derive from the base towers above (each under its own "
            "license) and from training on the MPII Human Pose images, whose annotations are BSD-2-Clause and "
            "whose images come from YouTube videos under their own terms; descriptions written by a hosted model "
            "may also carry that provider's terms. Check all of them before redistributing or deploying.")


def render_card(config, train_config_yaml: Optional[str], results: Optional[dict] = None,
                repo_id: Optional[str] = None, license_id: str = "other") -> ModelCard:
    """The whole card for a model with `config` (FocusCLIPConfig); `ModelCard.save(path)` writes it."""
    p = config.provenance or {}
    train_yaml = yaml.safe_load(train_config_yaml) if train_config_yaml else None
    base = sorted({i for key in ("vision", "text") for i in hub_ids_in(p.get(key))})
    name = repo_id.split("/")[-1] if repo_id else config.name
    evals = eval_results(results, name) if results else []
    dataset = hub_dataset(p.get("dataset"))
    data = ModelCardData(license=license_id, library_name="focusclip", pipeline_tag=PIPELINE, tags=TAGS,
                         language=["en"], base_model=base or None, datasets=[dataset] if dataset else None,
                         model_name=name if evals else None, eval_results=evals or None)
    resize = ((train_yaml or {}).get("data") or {}).get("resize", "crop")
    public_yaml, hidden = public_train_config(train_config_yaml) if train_config_yaml else (None, [])
    paths = (f" Paths of the training machine are shown as `{LOCAL}/NAME`, their last part only: "
             + ", ".join(f"`{k}`" for k in hidden) + "." if hidden else "")
    steps = config.training_step if config.training_step is not None else "an unrecorded number of"
    body = [f"# {name}", "", f"A {config.name} model trained with [focusclip](https://arxiv.org/abs/2403.06904)'s "
            f"`focus-train` for {steps} optimizer steps: CLIP trained on MPII Human Pose images and their pose "
            "descriptions, guided by person ROI heatmaps (FocusCLIP, Khan et al. 2024).", "",
            model_section(config, resize), "",
            data_section(p, train_yaml), "",
            "## Training config", "", f"The resolved `train_config.yaml`.{paths}", "",
            "```yaml", (public_yaml or "# not recorded\n").rstrip(), "```", "",
            results_section(results), "", usage_section(repo_id, config, resize), "", INTENDED, "", LIMITATIONS, "",
            license_section(license_id), "", _CITATION]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")

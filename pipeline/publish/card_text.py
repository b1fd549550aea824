"""Fixed prose of the dataset card and the rendering of filter reports (kept apart from the card's
structure so the wording can be edited in one place)."""
from __future__ import annotations

import re

from focusclip.data.citations import FOCUSCLIP_BIBTEX, MPII_BIBTEX
from focusclip.pipeline.download.catalog import MPII

INTRO = """\
Natural-language descriptions of the people, poses and activities in the images of the
[MPII Human Pose dataset](http://human-pose.mpi-inf.mpg.de/), joined with the MPII annotations
(keypoints, visibility, head boxes, activity labels). Introduced with FocusCLIP (Khan et al., 2024),
which trains CLIP with a third modality, a person ROI heatmap, on these images and descriptions.
Each config holds the descriptions of one describer (a language model, or the rule-based template);
its rows are the annotated MPII images that describer described. The columns of the original
*MPII Human Pose Captions* dataset keep their names and meaning."""

COLUMNS = """\
## Columns

| column | type | meaning |
| --- | --- | --- |
| `image` | string | MPII image file name, e.g. `015601864.jpg` |
| `video_id` | string | YouTube id of the source video (null when unknown) |
| `video_frame` | int32 | frame of that video (null when unknown) |
| `activity_id` | int32 | MPII activity id (-1 when unknown) |
| `activity` | string | `"<category>, <activity>"` as in the original dataset (empty when unknown) |
| `count` | int32 | number of annotated people |
| `people` | list | per person: `id`, `center` [x, y], `scale` (height / 200 px), `kpts` (16 [x, y] in MPII joint order), `kpts_vis` (1 labelled, 0 not: the original dataset's meaning), `visibility` (0 not labelled, 1 labelled but occluded, 2 visible), `head_box` [x1, y1, x2, y2] |
| `description` | string | the description |
| `category` | string | MPII activity category |
| `split` | string | MPII split of the image in the annotations (`train`, `val`, `test`) |
| `width`, `height` | int32 | image size in pixels (null when unknown) |
| `single_person` | list[int32] | indices into `people` of MPII's separated single persons |
| `describer`, `backend`, `model` | string | who wrote the description |
| `prompt_id`, `prompt_sha` | string | the prompt template's id and the hash of the prompt |
| `params` | string | the sampling parameters, a JSON object |
| `checks_passed` | list of string | the filter checks the description passed (empty: not filtered) |
| `check_failures` | list of {check, reason} | checks it failed but was published anyway, with the filter's reason |

Joint order (MPII): 0 r-ankle, 1 r-knee, 2 r-hip, 3 l-hip, 4 l-knee, 5 l-ankle, 6 pelvis, 7 thorax,
8 upper-neck, 9 head-top, 10 r-wrist, 11 r-elbow, 12 r-shoulder, 13 l-shoulder, 14 l-elbow, 15 l-wrist.
An unlabelled joint has `kpts` [-1.0, -1.0] and `kpts_vis` 0.
"""

HEATMAPS = """\
## ROI heatmaps

FocusCLIP weights each image by a heatmap of its people: `image * (alpha + heatmap * (1 - alpha))`.
A heatmap is an 8-bit grayscale PNG of the image's size holding `round(255 * value)`. For every person
and each of ten body parts — head [7,8,9,12,13], torso [6,7,12,13,2,3], l-upper-arm [13,14,7],
r-upper-arm [12,11,7], l-lower-arm [14,15,13], r-lower-arm [11,10,12], l-upper-leg [3,4,6],
r-upper-leg [2,1,6], l-lower-leg [4,5,3], r-lower-leg [1,0,2] (joint ids) — take the part's labelled
joints (at least two, coordinates truncated to integers); their box `min..max` gives the centre
`(min + max) // 2` and sigma `(max - min) // 2` per axis, floored at 1 pixel; the part contributes
`exp(-(dx² / 2σx² + dy² / 2σy²))`. Parts are summed and the sum is clipped to [0, 1]. The heatmaps
can be rendered from `people` alone, so they are stored only with `--with-images`."""

COORDINATES = """\
## Coordinates

All coordinates (`center`, `kpts`, `head_box`) are **0-based** pixels, kept as floats. The original
*MPII Human Pose Captions* JSON files carry the 1-based values of the HRNet/mmpose JSON: subtract 1
from theirs (or add 1 to these) to compare."""

# The terms of what a published folder holds (README "Licences" says the same):
# - MPII annotations: the MPII Human Pose dataset's Simplified BSD License, which the original *MPII
#   Human Pose Captions* dataset declares as `license: bsd-2-clause`; the descriptions are published
#   under it too. The heatmaps are drawn from the keypoints alone.
# - MPII images: what `focus-data download --list` says (pipeline/download/catalog.py, MPII.licence).
# - descriptions: also the terms of their describer's provider (describer_terms).
ANNOTATIONS_LICENSE = "bsd-2-clause"
IMAGES_LICENSE_NAME = "mpii-images-research-only"   # the card's `license_name` when the images are in it
MPII_PAGE = MPII.page
OPENAI_TERMS = "https://openai.com/policies/terms-of-use"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def describer_terms(describer: str, backend: str, model: str | None) -> str:
    """One line naming a describer and the terms its output may carry."""
    name = f"`{describer}`" + (f" (model `{model}`)" if model and model != describer else "")
    if backend == "template":
        return (f"{name}: the rule-based template describer of `focusclip` (no language model); its "
                f"descriptions carry no terms beyond the ones above")
    if backend == "openai":
        return (f"{name}, asked through an OpenAI-compatible API (`openai` backend): its output may carry "
                f"the terms of use of the API's provider (OpenAI's, for api.openai.com: {OPENAI_TERMS})")
    if backend in ("vllm", "transformers"):
        page = f", see https://huggingface.co/{model}" if model and _HUB_ID.fullmatch(model) else ""
        return (f"{name}, run with `{backend}`: its output may carry the model's licence and its "
                f"provider's terms of use{page}")
    return f"{name} (backend `{backend}`): its output may carry its provider's terms of use"


def licence_section(describers: list[str], with_images: bool) -> str:
    """The card's "Licence and terms": annotations, images and each describer (`describer_terms` lines)."""
    if with_images:
        images = (f"They are **included** in this copy (`image_data`, built with `--with-images`) and stay "
                  f"under those terms, so this card's license is `other` (`{IMAGES_LICENSE_NAME}`): use "
                  f"this copy for non-commercial research only, and do not redistribute it.")
        field = "this card's license is `other` because the images are in it (below)"
    else:
        images = (f"They are **not included**: `image` names the MPII file; get the images from the MPII "
                  f"Human Pose site ({MPII_PAGE}) under its terms.")
        field = f"this card's `license: {ANNOTATIONS_LICENSE}` covers them and the descriptions, not the images"
    lines = ["## Licence and terms", "",
             "This dataset joins material under different terms:", "",
             "- **MPII annotations** (`people`, `activity`, `category`, `video_id`, …, and the heatmaps, "
             "drawn from the keypoints alone): the MPII Human Pose dataset releases them under the "
             "Simplified BSD License (BSD-2-Clause), as the original *MPII Human Pose Captions* dataset "
             f"declares; {field}.",
             f"- **MPII images**: {MPII.licence}; they are frames of YouTube videos. {images}",
             "- **Descriptions**: published under the same BSD-2-Clause; each is the output of its "
             "describer, and may also carry that describer's provider's terms:"]
    lines += [f"  - {d}." for d in describers]
    lines += ["", "The `focusclip` code that built this dataset is MIT-licensed."]
    return "\n".join(lines)


def citation() -> str:
    return ("## Citation\n\nFocusCLIP (Khan et al., 2024, [arXiv:2403.06904](https://arxiv.org/abs/2403.06904)), "
            f"which introduced these descriptions:\n\n```bibtex\n{FOCUSCLIP_BIBTEX}\n```\n\n"
            f"The MPII Human Pose dataset:\n\n```bibtex\n{MPII_BIBTEX}\n```")


def usage(repo_id: str | None, config: str, with_images: bool) -> str:
    where = repo_id or "path/to/this/folder"
    lines = ["## Loading", "", "```python", "from datasets import load_dataset", "",
             f'ds = load_dataset("{where}", "{config}")   # one config per describer',
             'row = ds["train"][0]',
             'row["description"], row["people"][0]["kpts"]   # 16 [x, y], 0-based']
    if with_images:
        lines.append('row["image_data"]   # a PIL image')
    lines += ["```", "",
              "`focus-train` reads this folder (or the hub id) directly: set `data.dataset` to it and "
              "`data.describers` to the configs to draw descriptions from."]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


# The filter report's text statistics (pipeline/filter/text_metrics.py) in words; keys not named here are
# left out, except another report's plain numbers under `metrics`, shown under their own key.
_METRICS = {"vocabulary": "distinct words", "mtld": "lexical diversity (MTLD; higher is more varied)",
            "trigram_repetition": "share of repeated word trigrams",
            "tfidf_self_similarity": "mean TF-IDF similarity between descriptions",
            "flesch_kincaid_grade": "reading grade (Flesch–Kincaid)"}
_NOT_SHOWN = {"n_texts", "chars", "mtld_mean_per_text", "trigram_repetition_mean_per_text"}


def _spread(d: dict) -> str:
    """`{"mean", "median", "p5", "p95"}` → "mean 44.6, median 38 (5–95 %: 18–81.9)"."""
    text = f"mean {_fmt(d.get('mean'))}, median {_fmt(d.get('median'))}"
    return text + (f" (5–95 %: {_fmt(d['p5'])}–{_fmt(d['p95'])})" if "p5" in d and "p95" in d else "")


def filter_section(report: dict | None, note: str) -> str:
    """What the filter did to this config, from `X.report.json` beside `X.jsonl`, as a short table in
    words: descriptions checked, kept, rejected with their reasons, and the texts' statistics."""
    if not report:
        return f"Filter statistics: none ({note})."
    counts, metrics = report.get("counts") or {}, report.get("metrics") or {}
    checked = next((counts[k] for k in ("descriptions", "records_read", "read") if k in counts), None)
    rows = []
    if checked is not None:
        rows.append(("descriptions checked", checked))
    if "kept" in counts:
        share = f" ({100 * counts['kept'] / checked:.1f} %)" if checked else ""
        rows.append(("kept", f"{counts['kept']}{share}"))
    reasons = report.get("rejected_by_reason") or {}
    if "rejected" in counts or reasons:
        why = ", ".join(f"{k} {n}" for k, n in reasons.items())
        rows.append(("rejected", f"{counts.get('rejected', sum(reasons.values()))}" + (f": {why}" if why else "")))
    if report.get("rounds"):
        rows.append(("regeneration rounds", len(report["rounds"])))
    for key, label in (("words", "words per description"), ("sentences", "sentences per description")):
        if isinstance(metrics.get(key), dict):
            rows.append((label, _spread(metrics[key])))
    rows += [(_METRICS[k], v) for k, v in metrics.items() if k in _METRICS and v is not None]
    rows += [(k, v) for k, v in metrics.items() if k not in _METRICS and k not in _NOT_SHOWN
             and k not in ("words", "sentences") and isinstance(v, (int, float))]
    if not rows:
        return "Filter statistics: the filter report holds no counts."
    lines = ["Filter statistics (from the filter report):", "", "| statistic | value |", "| --- | ---: |"]
    return "\n".join(lines + [f"| {label} | {_fmt(v)} |" for label, v in rows])

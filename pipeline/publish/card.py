"""The dataset card (`README.md`) of a published folder: hub YAML metadata and a body that says what
each config is, how it was filtered, the heatmap definition and how to load and cite it."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from focusclip.pipeline.publish.card_text import (ANNOTATIONS_LICENSE, COLUMNS, COORDINATES, HEATMAPS,
                                                  IMAGES_LICENSE_NAME, INTRO, MPII_PAGE, citation,
                                                  describer_terms, filter_section, licence_section, usage)
from focusclip.pipeline.publish.shards import SplitFiles

PRETTY_NAME = "MPII Pose Descriptions"
TASKS = ["image-to-text", "zero-shot-image-classification", "keypoint-detection"]
TAGS = ["human-pose", "mpii", "pose-description", "image-captioning", "focusclip"]
# The hub's size_categories values with their upper bounds (huggingface_hub DatasetCardData docs).
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"))


@dataclass
class ConfigSummary:
    """What the card says about one config (one describer's descriptions)."""
    name: str
    source: str                                   # descriptions file name (no local folders)
    splits: dict[str, SplitFiles]
    describers: Counter = field(default_factory=Counter)
    backends: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    prompts: Counter = field(default_factory=Counter)   # (prompt_id, prompt_sha) → rows
    params: Counter = field(default_factory=Counter)    # params JSON less the image's own seed → rows
    sources: Counter = field(default_factory=Counter)   # (describer, backend, model) → rows
    rule_based: int = 0                           # rows of the template describer: no model, prompt or sampling
    filter_report: dict | None = None
    filter_note: str = ""                         # why there are no filter statistics

    def add(self, row: dict) -> None:
        self.describers[row["describer"]] += 1
        self.backends[row["backend"] or "unknown"] += 1
        self.models[row["model"] or ("none" if row["backend"] == "template" else "unknown")] += 1
        if row["backend"] == "template":   # its prompt_id and params are records' defaults, never used
            self.rule_based += 1
        else:
            self.prompts[(row["prompt_id"] or "unknown", row["prompt_sha"] or "")] += 1
            self.params[_settings(row["params"])] += 1
        self.sources[(row["describer"], row["backend"] or "unknown", row["model"])] += 1


def _settings(params: str) -> str:
    """A row's params JSON without `seed`: every image samples with its own (docs/describe.md), so rows
    sampled alike (one run seed, one set of settings) count as one setting."""
    parsed = json.loads(params) if params else {}
    if not isinstance(parsed, dict):
        return params
    return json.dumps({k: v for k, v in parsed.items() if k != "seed"}, sort_keys=True, ensure_ascii=False)


def size_category(n: int) -> str:
    return next((label for bound, label in SIZES if n < bound), "n>10M" if n >= 10**7 else "other")


def card_metadata(configs: list[ConfigSummary], feats: Features, default: str | None = None,
                  with_images: bool = False) -> DatasetCardData:
    """YAML front matter: license, tasks, sizes, `configs` (data files per split, `default: true` on
    the config `load_dataset(DIR)` loads without a name: `default`, else the first) and `dataset_info`.
    The license is the annotations' BSD-2-Clause, or `other` (MPII's research-only image terms) when
    the folder holds the images."""
    default = default or configs[0].name
    biggest = max(sum(f.num_examples for f in c.splits.values()) for c in configs)
    licence = (dict(license="other", license_name=IMAGES_LICENSE_NAME, license_link=MPII_PAGE) if with_images
               else dict(license=ANNOTATIONS_LICENSE))
    data = DatasetCardData(
        pretty_name=PRETTY_NAME, **licence, language=["en"], task_categories=TASKS,
        size_categories=[size_category(biggest)], tags=TAGS, annotations_creators=["expert-generated"],
        language_creators=["machine-generated"], source_datasets=["extended"],
        configs=[{"config_name": c.name, **({"default": True} if c.name == default else {}),
                  "data_files": [{"split": s, "path": f"{c.name}/{s}-*.parquet"}
                                 for s, f in c.splits.items() if f.files]}
                 for c in configs])
    infos = DatasetInfosDict()
    for c in configs:
        splits = SplitDict()
        for s, f in c.splits.items():
            if f.files:
                splits.add(SplitInfo(name=s, num_bytes=f.num_bytes, num_examples=f.num_examples))
        infos[c.name] = DatasetInfo(
            config_name=c.name, features=feats, splits=splits,
            download_size=sum(f.download_size for f in c.splits.values()),
            dataset_size=sum(f.num_bytes for f in c.splits.values()))
    infos.to_dataset_card_data(data)
    return data


def find_templates(prompt_id: str, templates_dir: Path | None) -> list[Path]:
    """`<templates_dir>/<id>.*.txt` (and `<id>.txt`), the prompts package's versioned templates."""
    if templates_dir is None or not templates_dir.is_dir() or prompt_id == "unknown":
        return []
    found = set(templates_dir.glob(f"{prompt_id}.*.txt")) | set(templates_dir.glob(f"{prompt_id}.txt"))
    return sorted(found)


def _fence(text: str) -> str:
    fence = "~~~~" if "```" in text else "```"
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _prompt_section(c: ConfigSummary, templates_dir: Path | None) -> list[str]:
    """Each prompt template once. `prompt_sha` may hash the filled prompt (one per image), so the
    hashes are counted rather than listed."""
    by_id: dict[str, Counter] = {}
    for (pid, sha), n in c.prompts.items():
        by_id.setdefault(pid, Counter())[sha] += n
    out = []
    for pid, shas in sorted(by_id.items(), key=lambda kv: -sum(kv[1].values())):
        sha_text = f"sha `{next(iter(shas)) or 'unknown'}`" if len(shas) == 1 else \
            f"{len(shas)} distinct `prompt_sha` values"
        out.append(f"- Prompt `{pid}` ({sha_text}), {sum(shas.values())} rows.")
        files = find_templates(pid, templates_dir)
        if not files:
            out.append("  Template text: unknown (not found in the prompts package).")
        for f in files:
            out += [f"  Template `{f.name}`:", "", _fence(f.read_text(encoding="utf-8")), ""]
    return out


def _counts_line(counter: Counter) -> str:
    return ", ".join(f"`{k}` ({n})" for k, n in counter.most_common())


def config_section(c: ConfigSummary, templates_dir: Path | None) -> str:
    lines = [f"### `{c.name}`", "", f"Descriptions from `{c.source}`.", "",
             f"- Describer: {_counts_line(c.describers)}",
             f"- Backend: {_counts_line(c.backends)}",
             f"- Model: {_counts_line(c.models)}"]
    if c.rule_based:
        lines.append(f"- {c.rule_based} rows written by the rule-based `template` describer: sentences filled "
                     "in from the pose facts measured on the annotated keypoints, with no language model, "
                     "prompt or sampling settings (the phrasing varies by a choice seeded per image).")
    lines += _prompt_section(c, templates_dir)
    if c.params:
        lines.append("- Sampling parameters:")
    for params, n in c.params.most_common(5):
        lines.append(f"  - `{params}` ({n} rows)")
    if len(c.params) > 5:
        lines.append(f"  - … and {len(c.params) - 5} other settings")
    lines += ["", "| split | rows | shards |", "| --- | ---: | ---: |"]
    lines += [f"| {s} | {f.num_examples} | {len(f.files)} |" for s, f in c.splits.items()]
    lines += ["", filter_section(c.filter_report, c.filter_note), ""]
    return "\n".join(lines)


def overview_table(configs: list[ConfigSummary], splits: tuple[str, ...], default: str) -> str:
    head = "| config | describer | model | " + " | ".join(splits) + " |"
    rule = "| --- | --- | --- | " + " | ".join("---:" for _ in splits) + " |"
    rows = [f"| `{c.name}`{' (default)' if c.name == default else ''} | {', '.join(c.describers)} | "
            f"{', '.join(c.models)} | "
            + " | ".join(str(c.splits[s].num_examples) for s in splits) + " |" for c in configs]
    return "\n".join([head, rule, *rows])


def render_card(configs: list[ConfigSummary], feats: Features, splits: tuple[str, ...],
                with_images: bool, with_heatmaps: bool, repo_id: str | None,
                templates_dir: Path | None, default: str | None = None) -> DatasetCard:
    """The whole card; `DatasetCard.save(path)` writes it. `default`: the default config (else the first)."""
    default = default or configs[0].name
    data = card_metadata(configs, feats, default, with_images)
    body = [f"# {PRETTY_NAME}", "", INTRO, "", "## Configs", "", overview_table(configs, splits, default), "",
            f"`{default}` is the default config: `load_dataset(…)` without a config name loads it.", ""]
    body += [config_section(c, templates_dir) for c in configs]
    body += [COLUMNS, _images_note(with_images, with_heatmaps), "", HEATMAPS, "", COORDINATES, "",
             usage(repo_id, default, with_images), "", licence_section(_describers(configs), with_images), "",
             citation()]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def _describers(configs: list[ConfigSummary]) -> list[str]:
    """Each (describer, backend, model) of every config once, as `describer_terms` lines."""
    seen = dict.fromkeys(src for c in configs for src, _ in c.sources.most_common())
    return [describer_terms(*src) for src in seen]


def _images_note(with_images: bool, with_heatmaps: bool) -> str:
    if not with_images:
        return ("Images and heatmaps are not included: `image` names the MPII image file; get the "
                "images from the MPII Human Pose site and render heatmaps from `people` (below).\n")
    note = "`image_data` holds the MPII image (JPEG bytes, `datasets.Image`)"
    if with_heatmaps:
        note += "; `heatmap` holds its ROI heatmap (8-bit grayscale PNG, `datasets.Image`)"
    return note + ".\n"


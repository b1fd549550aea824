"""Where training text and poses come from, read into one shape: `Item` per image.

`data.dataset` may be
  * a published folder (docs/design.md §3.4: README.md + `<config>/<split>-*.parquet`, read with
    `datasets.load_dataset(DIR, config)`; each config is one describer);
  * the hub id `USER/NAME` of a pushed one (`datasets.load_dataset(ID, config)`, cached by `datasets`;
    `HF_HUB_OFFLINE=1` reads the cache only);
  * our descriptions: a `.jsonl` file of Description records (§3.2) or a folder of
    `<describer>.kept.jsonl` / `<describer>.jsonl` files, joined with `data.annotations`;
  * the original MPII Human Pose Captions JSON: a `.json` file, or a folder of `<model>/train.json`,
    `<model>/val.json` (1-based keypoints, as in the HRNet JSON they came from).
Several describers of one image become several descriptions of one Item; training samples one per step.
"""
from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from focusclip.core.errors import fail
from focusclip.data.heatmaps import people_arrays
from focusclip.core.io import read_jsonl
from focusclip.core.report import Report
from focusclip.data.records import read_annotations

HUB_TO_SPLIT = {"train": "train", "validation": "val", "val": "val", "test": "test"}


@dataclass(frozen=True)
class Item:
    """One image: where its pixels are, its people, and every description of it."""
    image: str                              # name as in the records (e.g. 015601864.jpg)
    split: str                              # train / val / test
    kpts: np.ndarray                        # [P, 16, 2] float32, 0-based pixels
    kpts_vis: np.ndarray                    # [P, 16] int64, > 0 labelled
    descriptions: tuple[str, ...] = ()
    describers: tuple[str, ...] = ()        # who wrote each description
    image_bytes: Optional[bytes] = None     # embedded in a published folder (--with-images)
    heatmap_bytes: Optional[bytes] = None
    render_heatmap: bool = False            # its heatmap PNG is missing: drawn from kpts (check_heatmaps says so)


def load_items(dataset: str, describers: tuple[str, ...], annotations: Optional[str],
               report: Report) -> list[Item]:
    """All Items of `dataset` (every split), descriptions grouped per image, in a stable order."""
    from focusclip.core.hub_repo import names_hub_repo

    path = Path(dataset)
    if names_hub_repo(dataset):
        rows = _hub_rows(dataset, describers)
    elif path.is_dir() and (path / "README.md").is_file() and any(path.glob("*/*.parquet")):
        rows = _published_rows(path, describers)
    elif path.suffix == ".json" or (path.is_dir() and any(path.glob("*/train.json"))):
        rows = _original_rows(path, describers)
    elif path.suffix == ".jsonl" or (path.is_dir() and any(path.glob("*.jsonl"))):
        rows = _jsonl_rows(path, describers, annotations, report)
    else:
        raise fail("not a published folder, descriptions JSONL or original captions JSON", str(path),
                   "point data.dataset at `focus-data publish` output or a descriptions .jsonl")
    items = _group(rows, report)
    if not items:
        raise fail("holds no usable descriptions", str(path), "check data.describers and data.annotations")
    return items


def _group(rows: list[dict], report: Report) -> list[Item]:
    """Rows (one description each) → Items keyed by image; the first row's people win, and any
    row's embedded bytes (any config may embed them)."""
    by_image: dict[str, list[dict]] = {}
    for r in rows:
        text = r.get("description")
        if not isinstance(text, str) or not text.strip():
            report.skip("empty description", str(r.get("image")))
            continue
        by_image.setdefault(r["image"], []).append(r)
    items = []
    for image, group in by_image.items():
        first = group[0]
        items.append(Item(image, first["split"], *people_arrays(first.get("people") or []),
                          descriptions=tuple(r["description"].strip() for r in group),
                          describers=tuple(str(r.get("describer") or "") for r in group),
                          image_bytes=_first(group, "image_bytes"), heatmap_bytes=_first(group, "heatmap_bytes")))
    return items


def _first(rows: list[dict], key: str):
    """The first of the rows' `key` values that is set."""
    value = None
    for r in rows:
        value = value or r.get(key)
    return value


def _published_rows(root: Path, describers: tuple[str, ...]) -> list[dict]:
    configs = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
    wanted = _select(configs, describers, root)
    # a throw-away cache: the shared datasets cache can serve a stale copy of a re-published folder
    with tempfile.TemporaryDirectory(prefix="focus-train-ds-") as cache:
        return [row for config in wanted for row in _config_rows(root, config, cache)]


def _hub_rows(repo_id: str, describers: tuple[str, ...]) -> list[dict]:
    """A published dataset on the hub: its configs from the card, each loaded (and cached) by datasets."""
    configs = sorted(_from_hub(repo_id, lambda: _hub_configs(repo_id)))
    wanted = _select(configs, describers, Path(repo_id))
    return [row for config in wanted for row in _from_hub(repo_id, lambda c=config: _config_rows(repo_id, c))]


def _hub_configs(repo_id: str) -> list[str]:
    """Config names from the dataset card's YAML (the card is in the hub cache after one download, so
    this works offline too, where datasets.get_dataset_config_names only knows 'default')."""
    from huggingface_hub import DatasetCard

    configs = DatasetCard.load(repo_id, repo_type="dataset").data.to_dict().get("configs") or []
    names = [c["config_name"] for c in configs if isinstance(c, dict) and c.get("config_name")]
    if not names:
        import datasets

        names = datasets.get_dataset_config_names(repo_id)
    return names


def _from_hub(repo_id: str, call):
    """`call()`, with what datasets raises for a missing, unreachable or uncached repo as one line."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import RepositoryNotFoundError

    from focusclip.core.hub_repo import offline_error, scrub

    try:
        return call()
    except (DatasetNotFoundError, RepositoryNotFoundError):
        raise fail("data.dataset is neither a local path nor a dataset on the hub (or it is private)", repo_id,
                   "fix data.dataset, or set HF_TOKEN to a token that may read it") from None
    except (ConnectionError, OSError) as e:
        raise offline_error(repo_id, "dataset", e) from None
    except ValueError as e:
        raise fail(f"cannot load it as a published dataset ({scrub(str(e), None)[:200]})", repo_id,
                   "point data.dataset at a dataset pushed by `focus-data publish --push`") from None


@contextlib.contextmanager
def quiet_datasets():
    """datasets' own bars off for a load ("Generating train split: 100%…" for every split of every
    config, at every training start: bars nobody asked for, in every log), restored afterwards. An
    explicit HF_DATASETS_DISABLE_PROGRESS_BARS=0 (the user asked for them) keeps them."""
    import datasets.config
    from datasets.utils import disable_progress_bars, enable_progress_bars, is_progress_bar_enabled

    if datasets.config.HF_DATASETS_DISABLE_PROGRESS_BARS is False or not is_progress_bar_enabled():
        yield
        return
    disable_progress_bars()
    try:
        yield
    finally:
        enable_progress_bars()


def _config_rows(root: Path | str, config: str, cache: str | None = None) -> list[dict]:
    with quiet_datasets():     # loading, and casting the image columns, draw bars of their own
        return _read_config(root, config, cache)


def _read_config(root: Path | str, config: str, cache: str | None) -> list[dict]:
    import datasets

    rows = []
    for split, ds in datasets.load_dataset(str(root), config, cache_dir=cache).items():
        for col in ("image_data", "heatmap"):
            if col in ds.column_names:   # keep the encoded bytes; decode per sample in workers
                ds = ds.cast_column(col, datasets.Image(decode=False))
        for r in ds:
            r = dict(r)
            people = [dict(p, kpts_vis=p.get("visibility") or p.get("kpts_vis")) for p in r.get("people") or []]
            rows.append({"image": r["image"], "split": HUB_TO_SPLIT.get(r.get("split") or split, split),
                         "people": people, "description": r.get("description"),
                         "describer": r.get("describer") or config,
                         "image_bytes": (r.get("image_data") or {}).get("bytes"),
                         "heatmap_bytes": (r.get("heatmap") or {}).get("bytes")})
    return rows


def _select(found: list[str], wanted: tuple[str, ...], where: Path) -> list[str]:
    if not wanted:
        return found
    missing = [w for w in wanted if w not in found]
    if missing:
        raise fail(f"describer(s) {', '.join(missing)} not found (found: {', '.join(found) or 'none'})",
                   str(where), "fix data.describers")
    return list(wanted)


def _jsonl_rows(path: Path, describers: tuple[str, ...], annotations: Optional[str],
                report: Report) -> list[dict]:
    if annotations is None:
        raise fail("descriptions JSONL need data.annotations (people and splits)", str(path),
                   "--set data.annotations=out/annotations.jsonl")
    anns = {a.image: a for a in read_annotations(annotations)}
    rows = []
    for f in _jsonl_files(path, describers):
        for d in read_jsonl(f):
            if d.get("reason") is not None and "checks" not in d:
                report.skip("rejected by the filter", d.get("image"))
                continue
            who = d.get("describer") or f.name.split(".")[0]
            if path.is_file() and describers and who not in describers:
                continue
            ann = anns.get(d.get("image"))
            if ann is None:
                report.skip("image not in the annotations", str(d.get("image")))
                continue
            rows.append({"image": ann.image, "split": ann.split, "people": ann.people,
                         "description": d.get("description"), "describer": who})
    return rows


def _jsonl_files(path: Path, describers: tuple[str, ...]) -> list[Path]:
    """A file as is; in a folder, per describer `<name>.kept.jsonl` (filtered) else `<name>.jsonl`."""
    if path.is_file():
        return [path]
    names = sorted({p.name.split(".")[0] for p in path.glob("*.jsonl") if not p.name.endswith(".rejected.jsonl")})
    files = []
    for name in _select(names, describers, path):
        kept = path / f"{name}.kept.jsonl"
        files.append(kept if kept.is_file() else path / f"{name}.jsonl")
    return files


def _original_rows(path: Path, describers: tuple[str, ...]) -> list[dict]:
    """The original captions JSON: a list of {image, people[kpts (1-based), kpts_vis], description}."""
    if path.is_file():
        files = [(path.parent.name, path)]
    else:
        models = sorted(p.parent.name for p in path.glob("*/train.json"))
        files = [(m, f) for m in _select(models, describers, path)
                 for f in sorted((path / m).glob("*.json"))]
    rows = []
    for model, f in files:
        try:
            records = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise fail(f"not valid JSON ({e})", str(f), "pass the dataset's train.json/val.json") from None
        if not isinstance(records, list):
            raise fail("expected a JSON list of records", str(f), "pass the dataset's train.json/val.json")
        split = "val" if f.stem in ("val", "valid", "validation") else "train" if f.stem == "train" else None
        for r in records:
            if isinstance(r, dict) and isinstance(r.get("image"), str):
                rows.append({"image": r["image"], "split": split or r.get("split") or "train",
                             "people": [_zero_based(p) for p in r.get("people") or [] if isinstance(p, dict)],
                             "description": r.get("description"), "describer": model})
    return rows


def _zero_based(p: dict) -> dict[str, Any]:
    """1-based HRNet-JSON keypoints → 0-based; unlabelled joints stay as they are (ignored)."""
    vis = p.get("kpts_vis") or []
    kpts = []
    for j, pt in enumerate(p.get("kpts") or []):
        labelled = j < len(vis) and isinstance(vis[j], (int, float)) and vis[j] > 0
        ok = isinstance(pt, (list, tuple)) and len(pt) >= 2 and all(isinstance(c, (int, float)) for c in pt[:2])
        kpts.append([pt[0] - 1.0, pt[1] - 1.0] if labelled and ok else pt)
    return {"kpts": kpts, "kpts_vis": vis}

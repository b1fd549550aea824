"""`focus-data publish`: build the hub-ready dataset folder and optionally push it (docs/design.md §4)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.core.errors import fail
from focusclip.pipeline.commands.options import Force, Output


def parse_named_paths(items: list[str]) -> dict[str, Path]:
    """['NAME=PATH', …] → {NAME: PATH}, in order."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise fail(f"'{item}' is not NAME=PATH", "--descriptions", "e.g. --descriptions gpt-4o-mini=kept.jsonl")
        if name in out:
            raise fail(f"config name '{name}' is given twice", "--descriptions", "give each describer its own NAME")
        out[name] = Path(path)
    return out


def _print_summary(report, out: Path) -> None:
    rep = report.to_dict()
    state = ("up to date (--force rebuilds)" if rep.get("up_to_date")
             else f"rebuilt: {rep['rebuilt_because']}" if rep.get("rebuilt_because") else "built")
    print(f"{out}: {state}, {len(rep['configs'])} config(s), {rep['counts'].get('rows', 0)} rows")
    for name, splits in rep["configs"].items():
        print(f"  {name}: " + ", ".join(f"{s} {f['num_examples']} ({len(f['files'])} shards)"
                                        for s, f in splits.items()))
    for reason, n in rep["skipped"].items():
        print(f"skipped {n}: {reason}", file=sys.stderr)
    if "push" in rep:
        print(f"pushed to {rep['push']['repo_id']} in one commit: {rep['push']['commit_url']}")


def register(app: typer.Typer) -> None:
    @app.command("publish", help="Build the hub-ready MPII Pose Descriptions folder (parquet shards + dataset "
                                 "card, one config per describer); with --push, upload it in one commit.")
    def publish(
        annotations: Annotated[Path, typer.Option("--annotations", help="annotations.jsonl from `convert`.")],
        descriptions: Annotated[list[str], typer.Option(
            "--descriptions", help="NAME=PATH of a (filtered) descriptions JSONL; repeat for more configs. A quoted "
                                   "glob PATH ('kept/NAME.shard-*.jsonl') names the shard files of one config.")],
        output: Output,
        with_images: Annotated[bool, typer.Option("--with-images", metavar="", help="Embed images (and heatmaps).")] = False,
        images: Annotated[Optional[Path], typer.Option("--images", help="Folder of MPII images.")] = None,
        heatmaps: Annotated[Optional[Path], typer.Option("--heatmaps", help="Folder of heatmap PNGs.")] = None,
        max_shard_size: Annotated[str, typer.Option(
            "--max-shard-size", help="Largest shard, as uncompressed Arrow data (e.g. 500MB).")] = "500MB",
        repo_id: Annotated[Optional[str], typer.Option("--repo-id", help="Hub dataset repo USER/NAME.")] = None,
        push: Annotated[bool, typer.Option("--push", metavar="", help="Upload to --repo-id (token: HF_TOKEN or login).")] = False,
        private: Annotated[bool, typer.Option("--private", metavar="", help="Create the hub repo as private.")] = False,
        test_split: Annotated[bool, typer.Option("--test-split", metavar="", help="Also publish MPII test images.")] = False,
        default_config: Annotated[Optional[str], typer.Option(
            "--default-config", help="The config load_dataset(DIR) loads without a name (default: the first "
                                     "--descriptions).")] = None,
        allow_incomplete_shards: Annotated[bool, typer.Option(
            "--allow-incomplete-shards", metavar="", help="Publish shards that miss images or describe one twice (the report "
                                              "lists them); by default that is an error.")] = False,
        force: Force = False,
    ) -> None:
        from focusclip.pipeline.publish import PublishOptions, run_publish  # datasets is imported only here

        report = run_publish(PublishOptions(
            annotations, parse_named_paths(descriptions), output, include_test=test_split, with_images=with_images,
            images_dir=images, heatmaps_dir=heatmaps, max_shard_size=max_shard_size, repo_id=repo_id, push=push,
            private=private, force=force, default_config=default_config,
            allow_incomplete_shards=allow_incomplete_shards))
        _print_summary(report, output)

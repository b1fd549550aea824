"""The `focus-train` console script: `focus-train CONFIG.yaml [--set KEY=VALUE ...] [--resume latest|PATH]`,
plus `focus-train prepare CONFIG.yaml` (only build the prepared set), `focus-train push CHECKPOINT
--repo-id ID`, `focus-train export CHECKPOINT -o DIR` and `focus-train pretrain-vision|pretrain-text
TOWERS.yaml [-o DIR]` (the pretrained towers a tiny config may name).

One process, or many with `torchrun --nproc_per_node N $(which focus-train) CONFIG.yaml` (DDP).
The config is read and checked before torch is imported, so a bad config fails in a blink.
Training stays a single-command app (`focus-train CONFIG.yaml`, exactly as before): `main` hands the
command line to the `tools` app only when its first word is one of TOOLS.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.cli import SetOpt, Version
from focusclip.core.errors import run_cli

HELP = ("Train FocusCLIP or the CLIP baseline from a YAML config (configs/*.yaml; docs/training.md). "
        "Many GPUs: torchrun --nproc_per_node N $(which focus-train) CONFIG.yaml. "
        "Also: focus-train prepare CONFIG.yaml (decode the training set once into data.prepared), "
        "focus-train push CHECKPOINT --repo-id USER/NAME (upload the model to the hub), "
        "focus-train export CHECKPOINT -o DIR (the towers as plain ViT/BERT folders) and "
        "focus-train pretrain-vision / pretrain-text TOWERS.yaml (the pretrained tiny towers); "
        "each takes --help.")
app = typer.Typer(pretty_exceptions_enable=False, help=HELP)
tools = typer.Typer(pretty_exceptions_enable=False, help="focus-train's tools: prepare, push, export, wise, "
                    "pretrain-vision, pretrain-text.")
TOOLS = ("prepare", "push", "export", "wise", "pretrain-vision", "pretrain-text")

ConfigArg = Annotated[Path, typer.Argument(help="Training config YAML (configs/focusclip.yaml, …).")]
ResumeOpt = Annotated[Optional[str], typer.Option(
    "--resume", help="'latest' (OUTPUT_DIR/checkpoints/last) or a checkpoint/run directory.")]
ForceOpt = Annotated[bool, typer.Option("--force", metavar="", help="Start over in an output_dir that holds checkpoints.")]
CheckOpt = Annotated[bool, typer.Option(
    "--check", metavar="", help="Run every check the run makes before its first step (config, data paths, "
                    "images, heatmaps, a full batch of train.batch_size), say where each tower's weights come from "
                    "and how many steps the run takes (downloads nothing), then exit.")]


@app.command(help=HELP)
def main_command(config: ConfigArg, set_: SetOpt = None, resume: ResumeOpt = None, force: ForceOpt = False,
                 check: CheckOpt = False, version: Version = None) -> None:
    from focusclip.training.config import check_config, load_config
    from focusclip.training.factory import resolve_sources

    cfg = load_config(config, set_ or [])
    check_config(cfg, str(config))
    # where each tower comes from, before torch is imported: a tower that cannot be had fails in a blink
    sources = resolve_sources(cfg) if (check or resume is None) else None
    if check:
        from focusclip.training.plan import check_data

        data = check_data(cfg)   # the run's checks on its data, before "ok"
        typer.echo(f"ok: {config} ({cfg.model.name}, output_dir {cfg.output_dir})")
        for name, src in sources.items():
            typer.echo(f"  {name} tower: {src.describe()}")
        tok = "the text tower's" if sources["text"].kind != "random" else "WordPiece trained on the descriptions"
        typer.echo(f"  tokenizer: {tok}")
        for line in data:
            typer.echo(line)
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")   # tokenizers in forked data workers
    from focusclip.training.trainer import run_train

    report = run_train(cfg, resume=resume, force=force, sources=sources)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"trained {report.counts.get('steps', 0)} steps → {report.extra.get('checkpoint')}", err=True)


@tools.command("prepare", help="Decode the config's training and validation images and heatmaps once, at "
                               "training size, into memory-mapped shards in data.prepared (resumable; shards "
                               "are keyed by the sources and the geometry, so a changed config builds new "
                               "ones). focus-train does this itself when data.prepared is set; this runs only it.")
def prepare_command(config: ConfigArg, set_: SetOpt = None,
                    force: Annotated[bool, typer.Option("--force", metavar="", help="Rebuild this config's shards.")] = False,
                    ) -> None:
    from focusclip.training.config import check_config, load_config

    cfg = load_config(config, set_ or [])
    check_config(cfg, str(config))
    from focusclip.training.prepare import run_prepare

    report = run_prepare(cfg, force=force)
    p = report.extra["prepared"]
    per = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in p["bytes_per_1000_images"].items())
    typer.echo(f"prepared {p['images']} images in {p['shards']} shards ({p['built']} built, {p['reused']} "
               f"reused) → {p['folder']}; per 1,000 images: {per}")


CheckpointArg = Annotated[Path, typer.Argument(help="A focus-train run dir or checkpoints/<step> dir.")]
ResultsOpt = Annotated[Optional[Path], typer.Option(
    "--results", help="A focus-eval results.json: its zero-shot table goes into the model card (model-index).")]


@tools.command("push", help="Upload a checkpoint's model folder (weights, config, tokenizer, training config, "
                            "model card) to a hub model repo in one commit; the training state stays local. "
                            "Token: HF_TOKEN or `hf auth login`.")
def push_command(checkpoint: CheckpointArg,
                 repo_id: Annotated[str, typer.Option("--repo-id", help="Hub model repo USER/NAME.")],
                 private: Annotated[bool, typer.Option("--private", metavar="", help="Create the repo as private.")] = False,
                 results: ResultsOpt = None,
                 license_id: Annotated[str, typer.Option(
                     "--license", help="License id for the card (hub license ids; default 'other').")] = "other",
                 ) -> None:
    from focusclip.core.hub_repo import check_repo_id, write_token

    check_repo_id(repo_id)   # before torch is imported: a bad id or no token fails in a blink
    write_token("focus-train push")
    from focusclip.training.publish import push_checkpoint

    report = push_checkpoint(checkpoint, repo_id, private=private, results=results, license_id=license_id)
    done = report.extra["push"]
    typer.echo(f"pushed {done['files']} files to {done['repo_id']} in one commit: {done['commit_url']}")


@tools.command("export", help="Write the towers of a checkpoint (a folder or a hub id) as plain transformers "
                              "folders: DIR/vision (ViTModel), DIR/text (BERT-family encoder + tokenizer), the "
                              "projections and the model card.")
def export_command(checkpoint: Annotated[str, typer.Argument(help="A checkpoint folder, run dir or hub id.")],
                   output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write.")],
                   results: ResultsOpt = None,
                   force: Annotated[bool, typer.Option("--force", metavar="", help="Replace a non-empty -o.")] = False,
                   as_base: Annotated[bool, typer.Option("--as-base", metavar="", help=(
                       "A checkpoint fine-tuned from a dual encoder (model.init): write it as the base model's own "
                       "class (CLIPModel, SiglipModel, …) with its tokenizer and image processor."))] = False) -> None:
    from focusclip.training.publish import export_towers

    if as_base:
        from focusclip.training.base_model import export_as_base

        report = export_as_base(checkpoint, output, force=force)
        typer.echo(f"wrote {output} ({report.extra['class']} with its tokenizer and image processor)")
        return
    report = export_towers(checkpoint, output, results=results, force=force)
    typer.echo(f"wrote {report.extra['vision']} ({report.extra['vision_class']}) and {report.extra['text']} (text encoder + tokenizer)")


@tools.command("wise", help="WiSE-FT: a checkpoint whose dual encoder is (1 − A)·base + A·fine-tuned, the base "
                            "being the model.init the checkpoint was fine-tuned from.")
def wise_command(checkpoint: Annotated[str, typer.Argument(help="A checkpoint folder or run dir fine-tuned with model.init.")],
                 alpha: Annotated[float, typer.Option("--alpha", help="0 = the base model, 1 = the fine-tuned one.")],
                 output: Annotated[Path, typer.Option("-o", "--output", help="Checkpoint folder to write.")],
                 force: Annotated[bool, typer.Option("--force", metavar="", help="Replace a non-empty -o.")] = False) -> None:
    from focusclip.training.base_model import wise_ft

    wise_ft(checkpoint, alpha, output, force=force)
    typer.echo(f"wrote {output} (WiSE-FT, alpha {alpha:g})")


TowersArg = Annotated[Path, typer.Argument(help="Pretraining config YAML (configs/mini-towers.yaml).")]
TowerOut = Annotated[Optional[Path], typer.Option(
    "-o", "--output", help="The tower folder to write (default OUTPUT_DIR/vision or OUTPUT_DIR/text).")]
TowerForce = Annotated[bool, typer.Option("--force", metavar="", help="Rebuild a finished tower (or one of other options).")]


def _pretrain(tower: str, config: Path, set_, output, force: bool) -> None:
    from focusclip.training.pretrain import load_pretrain_config, run_pretrain

    cfg = load_pretrain_config(config, set_ or [])
    report = run_pretrain(tower, cfg, output, force=force)
    where = output or Path(cfg.output_dir) / tower
    val = ", ".join(f"{k} {v}" for k, v in (report.extra.get("val") or {}).items())
    verb = "reused (already pretrained)" if report.extra.get("reused") else f"pretrained {report.counts.get('steps', 0)} steps"
    typer.echo(f"{tower} tower {verb} → {where}" + (f" ({val})" if val else ""))


@tools.command("pretrain-vision", help="Pretrain a ViT by masked-image modelling (SimMIM) on the training "
                                       "images (no labels, no text) and save it as a plain ViTModel folder that "
                                       "model.vision.pretrained can name. Resumable; a finished tower is reused.")
def pretrain_vision(config: TowersArg, set_: SetOpt = None, output: TowerOut = None, force: TowerForce = False) -> None:
    _pretrain("vision", config, set_, output, force)


@tools.command("pretrain-text", help="Pretrain a BERT text tower by masked language modelling on the training "
                                     "descriptions, with the WordPiece tokenizer trained on them; saved as a plain "
                                     "BertModel folder that model.text.pretrained can name. Resumable.")
def pretrain_text(config: TowersArg, set_: SetOpt = None, output: TowerOut = None, force: TowerForce = False) -> None:
    _pretrain("text", config, set_, output, force)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in TOOLS:
        run_cli(tools)
    else:
        run_cli(app)


if __name__ == "__main__":
    main()

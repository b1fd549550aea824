"""`focus-data describe annotations.jsonl -o descriptions/NAME.jsonl [--backend …]`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.data.errors import FocusError
from focusclip.pipeline.commands.options import Backend, Device, Force, Limit, Output, Shard, Split


def register(app: typer.Typer) -> None:
    @app.command("describe", help="Describe each image's poses with the template describer or an LLM; "
                                  "appends to a resumable JSONL (one record per image).")
    def describe(
        annotations: Annotated[Path, typer.Argument(help="annotations.jsonl from `focus-data convert`.")],
        output: Output,
        backend: Annotated[Backend, typer.Option(help="template (offline), or an LLM: openai (any "
                                                      "OpenAI-compatible server), vllm (in-process) or "
                                                      "transformers.")] = Backend.template,
        model: Annotated[Optional[str], typer.Option(help="Model name (openai); hub id (downloaded and "
                                                          "cached) or save_pretrained folder (vllm, "
                                                          "transformers).")] = None,
        base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint, e.g. "
                                                             "http://localhost:8000/v1.")] = None,
        concurrency: Annotated[int, typer.Option(help="Requests in flight (openai); batch size "
                                                      "(vllm, transformers).")] = 8,
        split: Annotated[Optional[Split], typer.Option(help="Only this split.")] = None,
        limit: Limit = None,
        shard: Shard = None,
        seed: Annotated[int, typer.Option(help="Sampling seed (also picks the template's phrasing).")] = 0,
        temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.5,
        max_tokens: Annotated[int, typer.Option(help="Answer token limit (doubled up to twice on "
                                                     "finish_reason 'length').")] = 512,
        prompt: Annotated[str, typer.Option("--prompt", help="Prompt template id in prompts/templates.")]
        = "pose-v1",
        describer: Annotated[Optional[str], typer.Option(help="Describer name in the records (default: "
                                                              "'template' or the model name).")] = None,
        with_coords: Annotated[bool, typer.Option("--with-coords", help="Also give the LLM raw keypoint "
                                                                       "coordinates.")] = False,
        timeout: Annotated[float, typer.Option(help="Seconds per HTTP request (openai).")] = 120.0,
        max_retries: Annotated[int, typer.Option(help="Retries per image for 429/5xx/dropped/malformed "
                                                      "answers (openai).")] = 8,
        device: Device = "auto",
        force: Force = False,
    ) -> None:
        from focusclip.pipeline.describe import run_describe

        report = run_describe(annotations, output, backend=backend.value, model=model, base_url=base_url,
                              concurrency=concurrency, split=split.value if split else None, limit=limit,
                              shard=shard, seed=seed,
                              temperature=temperature, max_tokens=max_tokens, prompt_id=prompt,
                              describer=describer, with_coords=with_coords, force=force, timeout_s=timeout,
                              max_retries=max_retries, device=device)
        summary = {k: report.counts.get(k, 0) for k in ("images", "asked", "described", "already_described",
                                                        "failed")}
        typer.echo(f"describe: {json.dumps(summary)} → {output}", err=True)
        failed = report.counts.get("failed", 0)
        if failed and not report.counts.get("described", 0):
            first = (report.extra.get("failures") or [{}])[0].get("error", "unknown")
            raise FocusError(f"no image could be described: {failed} failed, the first with: {first} "
                             f"(check --base-url, --model and the server, then rerun the same command)")
        if failed:
            typer.echo("some images failed (see the report); rerun the same command to retry them", err=True)

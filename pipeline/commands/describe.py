"""`focus-data describe annotations.jsonl -o descriptions/NAME.jsonl [--backend …]`."""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.pipeline.commands.options import Backend, Device, Force, Limit, Output, Shard, Split


class DType(str, Enum):
    """vLLM's weight and activation dtype; auto is the model's own (config.json torch_dtype)."""
    auto = "auto"
    bfloat16 = "bfloat16"
    float16 = "float16"
    float32 = "float32"


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
        concurrency: Annotated[Optional[int], typer.Option(
            help="Requests in flight (openai, default 8); sequences scheduled at once, vLLM's max_num_seqs "
                 "(vllm, default 256); batch size (transformers, default 8).")] = None,
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
        server_wait: Annotated[float, typer.Option(
            "--server-wait", help="Seconds to wait for the server's /v1/models before the first request "
                                  "(openai; a vllm serve started just before needs minutes to load).")] = 600.0,
        max_model_len: Annotated[Optional[int], typer.Option(
            "--max-model-len", min=1, help="Context length (vllm; default: the model's own).")] = None,
        tensor_parallel_size: Annotated[int, typer.Option(
            "--tensor-parallel-size", min=1, help="GPUs the model is split over (vllm).")] = 1,
        dtype: Annotated[DType, typer.Option(
            "--dtype", help="Weights and activations (vllm; auto: the model's own).")] = DType.auto,
        device: Device = "auto",
        force: Force = False,
    ) -> None:
        from focusclip.pipeline.describe import run_describe

        report = run_describe(annotations, output, backend=backend.value, model=model, base_url=base_url,
                              concurrency=concurrency, split=split.value if split else None, limit=limit,
                              shard=shard, seed=seed,
                              temperature=temperature, max_tokens=max_tokens, prompt_id=prompt,
                              describer=describer, with_coords=with_coords, force=force, timeout_s=timeout,
                              max_retries=max_retries, device=device, server_wait_s=server_wait,
                              max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
                              dtype=dtype.value)
        summary = {k: report.counts.get(k, 0) for k in ("images", "asked", "described", "already_described",
                                                        "failed")}
        typer.echo(f"describe: {json.dumps(summary)} → {output}", err=True)
        if report.counts.get("failed", 0):
            typer.echo("some images failed (see the report); rerun the same command to retry them", err=True)

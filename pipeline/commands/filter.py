"""`focus-data filter descriptions/NAME.jsonl --annotations annotations.jsonl -o descriptions/NAME.kept.jsonl`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from focusclip.pipeline.commands.options import Backend, Device, Output

_CHECK_NAMES = "empty, refusal, truncated, length, leak, repetition, people_count, posture, arms"


def _describe_options(**given) -> dict:
    """Only the describe options the user set: the rest default to the rejected records' own."""
    return {k: v for k, v in given.items() if v is not None and v is not False}


def register(app: typer.Typer) -> None:
    @app.command("filter", help="Keep descriptions that are sound and agree with the keypoints; write "
                                "KEPT.jsonl, KEPT.rejected.jsonl (with reasons) and KEPT.report.json.")
    def filter(
        descriptions: Annotated[Path, typer.Argument(help="descriptions/NAME.jsonl from `focus-data describe`.")],
        annotations: Annotated[Path, typer.Option("--annotations", help="annotations.jsonl the descriptions "
                                                                        "were made from.")],
        output: Output,
        check: Annotated[Optional[list[str]], typer.Option(
            "--check", help=f"Run only this check (repeatable): {_CHECK_NAMES}.")] = None,
        skip_check: Annotated[Optional[list[str]], typer.Option(
            "--skip-check", help="Do not run this check (repeatable).")] = None,
        set_: Annotated[Optional[list[str]], typer.Option(
            "--set", help="Threshold override KEY=VALUE (repeatable), e.g. --set max_words=400; "
                          "see FilterConfig.")] = None,
        regenerate: Annotated[int, typer.Option(
            "--regenerate", help="Send rejected images back to describe for up to N rounds.")] = 0,
        backend: Annotated[Optional[Backend], typer.Option(help="--regenerate: the describe backend "
                                                                "(default: the records' own).")] = None,
        model: Annotated[Optional[str], typer.Option(help="--regenerate: model name or directory.")] = None,
        base_url: Annotated[Optional[str], typer.Option(help="--regenerate: OpenAI-compatible endpoint.")] = None,
        concurrency: Annotated[Optional[int], typer.Option(help="--regenerate: requests in flight.")] = None,
        seed: Annotated[Optional[int], typer.Option(help="--regenerate: base sampling seed (each round "
                                                         "adds its own offset).")] = None,
        temperature: Annotated[Optional[float], typer.Option(help="--regenerate: sampling temperature.")] = None,
        max_tokens: Annotated[Optional[int], typer.Option(help="--regenerate: answer token limit.")] = None,
        prompt: Annotated[Optional[str], typer.Option("--prompt", help="--regenerate: prompt template id "
                                                                       "(default: the records' own).")] = None,
        with_coords: Annotated[bool, typer.Option("--with-coords", help="--regenerate: give the LLM raw "
                                                                       "coordinates (as describe did).")] = False,
        timeout: Annotated[Optional[float], typer.Option(help="--regenerate: seconds per HTTP request.")] = None,
        max_retries: Annotated[Optional[int], typer.Option(help="--regenerate: retries per image.")] = None,
        server_wait: Annotated[Optional[float], typer.Option(
            "--server-wait", help="--regenerate: seconds to wait for the server's /v1/models.")] = None,
        device: Device = None,
    ) -> None:
        from focusclip.pipeline.filter import config_with, run_filter

        opts = _describe_options(backend=backend.value if backend else None, model=model, base_url=base_url, concurrency=concurrency,
                                 seed=seed, temperature=temperature, max_tokens=max_tokens, prompt_id=prompt,
                                 with_coords=with_coords, timeout_s=timeout, max_retries=max_retries,
                                 server_wait_s=server_wait, device=device)
        report = run_filter(descriptions, annotations, output, config=config_with(set_ or ()),
                            checks=check or None, skip_checks=skip_check or (), regenerate=regenerate,
                            describe_options=opts)
        c = report.counts
        typer.echo(f"filter: {c.get('kept', 0)} kept, {c.get('rejected', 0)} rejected "
                   f"{json.dumps(report.extra['rejected_by_reason'])}, {sum(report.skipped.values())} skipped "
                   f"→ {output}", err=True)

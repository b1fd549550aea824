"""`focus-data describe`: pose descriptions from an LLM (docs/describe.md).

`stage` is the resumable loop over images, `backends` the registry that builds a backend by name,
`types` what every backend shares; the backends are `template`, `openai_api` (OpenAI-compatible
servers: retries, backoff, the key never shown) and `local` (vLLM in-process, transformers); `shards`
reads the outputs of `--shard I/N` runs together (for filter and publish).
"""
from focusclip.pipeline.describe.stage import DescribeOptions, run_describe

__all__ = ["DescribeOptions", "run_describe"]

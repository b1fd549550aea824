"""The `openai` backend: any OpenAI-compatible chat-completions endpoint (OpenAI, `vllm serve`,
Ollama, llama.cpp server) through `openai.AsyncOpenAI`.

Before the first job, `prepare` waits (bounded, with a progress bar) for the server's `/v1/models`
and checks that the model is listed, so a server still loading or never coming up (a gated model, a
typo in --model) costs one clear line instead of hours of retries. At most `concurrency` requests are
then in flight (that many workers share one queue). The SDK's own retries are off: this module retries
429, 5xx, dropped connections, timeouts and malformed or empty answers with exponential backoff that
honours `Retry-After`, stops at once on 401/403/404, and stops the run after a run of consecutive
connection failures (the server went away). The API key comes from OPENAI_API_KEY and never appears
in output: messages are scrubbed of it.

Sampling is the server's (`vllm serve` applies the model's generation_config) except what the user set
(`--temperature`, `--top-p`) and `--max-tokens`; each request carries its image's seed. A server other
than api.openai.com is asked to keep reasoning off (`chat_template_kwargs: {enable_thinking: false}`)
unless `--thinking`; one that refuses the field (HTTP 400 naming it) is asked again without it.
"""
from __future__ import annotations

import asyncio
import email.utils
import math
import os
import random
import re
import sys
import time
from typing import Sequence

from focusclip.core.errors import FocusError, fail, printable
from focusclip.core.progress import progress
from focusclip.pipeline.describe.structured import RESPONSE_FORMAT
from focusclip.pipeline.describe.types import Answer, Emit, GenParams, Job

_PLACEHOLDER_KEY = "EMPTY"  # local servers (vllm serve, Ollama) accept any key
# OpenAI's reasoning models (o1, o3, o4-mini, the gpt-5 family) refuse `max_tokens` and any temperature
# but the default: they take `max_completion_tokens`, which also counts the hidden reasoning tokens.
_REASONING = re.compile(r"^(?:[\w.-]+/)?(?:o\d+|gpt-5)(?:[-.][\w.-]*)?$", re.IGNORECASE)
_POLL_S = 1.0  # how often a server that is not up yet is asked again
_STARTING = (502, 503, 504)  # a proxy or server still waiting for the model: ask again
# OpenAI's own API is up or the network is down: no model loading to wait for, so --server-wait's
# default (minutes, for a `vllm serve` still loading) shrinks to this unless the user chose a wait
PUBLIC_WAIT_S = 30.0
DEFAULT_WAIT_S = GenParams.__dataclass_fields__["server_wait_s"].default


def is_reasoning_model(model: str) -> bool:
    """o1, o1-mini, o3-mini, o4-mini-2025-04-16, gpt-5, gpt-5-mini, openai/o3, …"""
    return bool(_REASONING.match(model.strip()))


class GiveUp(Exception):
    """This job failed for good (retries exhausted or a request error); other jobs go on."""


class Retry(Exception):
    """A retryable failure; `wait` is the server's Retry-After in seconds, when it sent one."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait


def retry_after_seconds(headers) -> float | None:
    """`retry-after-ms`, or `retry-after` as seconds or an HTTP date; None when absent or unreadable."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str, base_url: str | None, params: GenParams, api_key: str | None = None):
        self.model, self.base_url, self.params = model, base_url, params
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key and not base_url:
            raise fail("OPENAI_API_KEY is not set", "environment",
                       "export OPENAI_API_KEY=… (or pass --base-url for a local server that needs none)")
        self._key = key or _PLACEHOLDER_KEY
        self._rng = random.Random(params.seed)
        self.reasoning = is_reasoning_model(model)
        self._refused_in_a_row = 0   # connection failures since the last answer of any kind
        # what a chat template reads (vllm serve, llama.cpp); OpenAI's own API takes no such field
        self._extra_body = {"chat_template_kwargs": {"enable_thinking": False}} \
            if base_url and not params.thinking else {}

    def _scrub(self, text: str) -> str:   # a server's text: no key, no control characters (issue 30)
        return printable(text.replace(self._key, "***") if self._key != _PLACEHOLDER_KEY else text)

    def _client(self, timeout: float):
        import openai

        return openai.AsyncOpenAI(api_key=self._key, base_url=self.base_url, timeout=timeout, max_retries=0)

    def prepare(self) -> None:
        """Wait for the server, then check it serves `model` (docs/describe.md, "A server that is not up")."""
        asyncio.run(self._check_server())

    async def _check_server(self) -> None:
        async with self._client(min(10.0, self.params.timeout_s)) as client:
            served = await self._wait_for_models(client)
        if served and self.model not in served and f"{self.model}:latest" not in served:
            shown = ", ".join(sorted(served)[:8]) + (", …" if len(served) > 8 else "")
            raise fail(f"the server does not serve model '{self.model}' (it lists: {shown})", self._where(),
                       "pass one of those to --model (vllm serve lists its --served-model-name, "
                       "else the path or hub id it was started with)")

    async def _wait_for_models(self, client) -> list[str] | None:
        """The model ids `GET /models` lists, asking every second until the server answers or
        `server_wait_s` have passed (a user error then); None when it answers without a list."""
        import openai

        wait, t0, bar, last = self.server_wait_s(), time.monotonic(), None, ""
        try:
            while True:
                try:
                    page = await client.models.list()
                    return [m.id for m in page.data if isinstance(getattr(m, "id", None), str)]
                except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                    raise self._refused(e) from None
                except openai.APIStatusError as e:
                    if e.status_code not in _STARTING:
                        return None   # it is up, but lists no models (the first request checks the model)
                    last = f"HTTP {e.status_code}"
                except openai.APIConnectionError as e:
                    last = "timed out" if isinstance(e, openai.APITimeoutError) else "connection refused"
                except (ValueError, TypeError, KeyError, openai.APIResponseValidationError):
                    return None
                waited = time.monotonic() - t0
                if waited >= wait:
                    raise self._no_server(wait, last)
                if bar is None:   # what is awaited and how to skip it, before the bar (which may be hidden)
                    print(f"waiting up to {wait:.0f} s for the server at {self._where()}/models (asked every "
                          f"second; --server-wait S changes the wait, --server-wait 0 asks once)", file=sys.stderr)
                    bar = progress(total=math.ceil(wait), desc=f"waiting for the server at {self._where()}",
                                   unit="s", leave=False)
                await asyncio.sleep(min(_POLL_S, wait - waited))
                bar.update(min(math.ceil(wait), int(time.monotonic() - t0)) - bar.n)
        finally:
            if bar is not None:
                bar.close()

    def server_wait_s(self) -> float:
        """--server-wait, or PUBLIC_WAIT_S for OpenAI's own API when the user left the default."""
        url = self.base_url or os.environ.get("OPENAI_BASE_URL") or ""
        public = not url or "//api.openai.com" in url
        return PUBLIC_WAIT_S if public and self.params.server_wait_s == DEFAULT_WAIT_S else self.params.server_wait_s

    def _no_server(self, waited: float, last: str) -> FocusError:
        """Blames only what the user set: --base-url, else OPENAI_BASE_URL (the SDK reads it), else the network."""
        what = f"no server answered at {self._where()}/models in {waited:.0f} s ({last})"
        loading = ("`vllm serve` answers once the model is loaded (a gated model needs HF_TOKEN, see its log); "
                   "wait longer with --server-wait")
        if self.base_url:
            return fail(what, "--base-url", f"start the server first and check --base-url; {loading}")
        if os.environ.get("OPENAI_BASE_URL"):
            return fail(what, "OPENAI_BASE_URL", f"start the server first and check OPENAI_BASE_URL; {loading}")
        return fail(what, None, "OpenAI's API did not answer: check this machine's network (HTTPS_PROXY behind "
                    "a proxy); wait longer with --server-wait")

    def _refused(self, e) -> FocusError:
        return fail(f"the server refused the API key (HTTP {e.status_code})", self._where(), "check OPENAI_API_KEY")

    def run(self, jobs: Sequence[Job], emit: Emit) -> None:
        if jobs:
            asyncio.run(self._run(list(jobs), emit))

    async def _run(self, jobs: list[Job], emit: Emit) -> None:
        queue: asyncio.Queue[Job] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        async with self._client(self.params.timeout_s) as client:
            workers = [asyncio.create_task(self._worker(client, queue, emit))
                       for _ in range(min(self.params.concurrency, len(jobs)))]
            done, pending = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for task in pending:  # a fatal error in one worker stops the others
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            # Retrieve every finished task's exception, so none is logged later as "never
            # retrieved" (a traceback on stderr); the first one is the run's error.
            errors = [task.exception() for task in done if task.exception() is not None]
            if errors:
                raise errors[0]

    async def _worker(self, client, queue: asyncio.Queue, emit: Emit) -> None:
        while not queue.empty():
            job = queue.get_nowait()
            try:
                answer = await self.ask(client, job)
            except GiveUp as e:
                emit(job, None, self._scrub(str(e)))
            else:
                emit(job, answer, None)

    async def ask(self, client, job: Job) -> Answer:
        """One job to an answer: retries with backoff; more tokens after finish_reason 'length'."""
        p, max_tokens, length_left, failures, last = self.params, self.params.max_tokens, \
            self.params.length_retries, 0, ""
        while failures <= p.max_retries:
            try:
                answer = await self._request(client, job, max_tokens)
            except Retry as e:
                failures, last = failures + 1, str(e)
                if failures <= p.max_retries:
                    await asyncio.sleep(self._wait(failures - 1, e.wait))
                continue
            if answer.finish_reason == "length" and length_left > 0:
                length_left, max_tokens = length_left - 1, max_tokens * 2
                continue
            if not answer.text:
                raise GiveUp(f"finish_reason 'length' with no text even at max_tokens={max_tokens}")
            return answer  # a 'length' answer that has text is kept; the record says so
        raise GiveUp(f"gave up after {failures} failed attempts: {last}")

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        """Server's Retry-After when given (capped), else exponential backoff with jitter."""
        p = self.params
        if retry_after is not None:
            return min(retry_after, p.max_backoff_s)
        base = min(p.max_backoff_s, p.backoff_s * 2 ** attempt)
        return base * (0.5 + 0.5 * self._rng.random())

    def sent_params(self, max_tokens: int) -> dict:
        """The generation parameters of a request: what the user set and the token limit; reasoning
        models take `max_completion_tokens` and no sampling settings (the API accepts only its defaults)."""
        if self.reasoning:
            return {"max_completion_tokens": max_tokens}
        return {**self.params.overrides(), "max_tokens": max_tokens}

    async def _request(self, client, job: Job, max_tokens: int) -> Answer:
        """One HTTP request; raises Retry, GiveUp or FocusError (fatal for the whole run)."""
        import openai

        sent = self.sent_params(max_tokens)
        extra = {"extra_body": self._extra_body} if self._extra_body else {}
        if self.params.structured:   # the answer follows structured.SCHEMA (OpenAI, vllm serve, llama.cpp)
            extra["response_format"] = RESPONSE_FORMAT
        try:
            completion = await client.chat.completions.create(
                model=self.model, messages=job.prompt.messages, seed=job.seed, **sent, **extra)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise self._refused(e) from None
        except openai.NotFoundError:
            raise fail(f"model '{self.model}' or the chat-completions route was not found (HTTP 404)",
                       self._where(), "check --model and --base-url (it usually ends in /v1)") from None
        except openai.APIStatusError as e:
            self._refused_in_a_row = 0   # the server is there
            if e.status_code in (408, 409, 429) or e.status_code >= 500:
                raise Retry(f"HTTP {e.status_code}", retry_after_seconds(e.response.headers)) from None
            if e.status_code == 400 and self._extra_body and "chat_template_kwargs" in str(e.message):
                self._extra_body = {}   # a server that takes no chat template variables: ask without them
                raise Retry("HTTP 400 for chat_template_kwargs: asking without it", 0.0) from None
            raise GiveUp(f"HTTP {e.status_code}: {self._scrub(str(e.message))[:200]}") from None
        except openai.APITimeoutError as e:   # slow, not gone: not counted as a lost server
            raise Retry(f"connection failed ({type(e).__name__})") from None
        except openai.APIConnectionError as e:  # refused, reset or dropped
            self._count_connection_failure()
            raise Retry(f"connection failed ({type(e).__name__})") from None
        except (ValueError, TypeError, KeyError, openai.APIResponseValidationError) as e:
            self._refused_in_a_row = 0
            raise Retry(f"malformed response ({type(e).__name__})") from None
        self._refused_in_a_row = 0
        answer = self._answer(completion, max_tokens)
        recorded = {"temperature": None, **sent} if self.reasoning else {k: v for k, v in sent.items()
                                                                          if k != "max_tokens"}
        return Answer(answer.text, answer.finish_reason, answer.usage, max_tokens, recorded, answer.reasoning)

    def _count_connection_failure(self) -> None:
        """Many connection failures in a row, with no answer between them, mean the server is gone:
        stop the whole run with one line instead of retrying every image for minutes."""
        self._refused_in_a_row += 1
        n = self.params.max_connection_failures
        if self._refused_in_a_row >= n:
            raise fail(f"lost the server: {n} connection failures in a row", self._where(),
                       "check that the server still runs (its log), then rerun the same command: "
                       "described images are kept")

    @staticmethod
    def _answer(completion, max_tokens: int) -> Answer:
        """Text, finish reason and usage; an empty or shapeless answer is retried."""
        choices = getattr(completion, "choices", None)
        if not choices:
            raise Retry("malformed response (no choices)")
        message = getattr(choices[0], "message", None)
        text = (getattr(message, "content", None) or "").strip()
        finish = getattr(choices[0], "finish_reason", None)
        if not text and finish != "length":
            raise Retry("empty response")
        usage = getattr(completion, "usage", None)
        tokens = {k: int(getattr(usage, k)) for k in ("prompt_tokens", "completion_tokens")
                  if usage is not None and isinstance(getattr(usage, k, None), int)}
        # a server with a reasoning parser (vllm serve --reasoning-parser) returns the reasoning apart
        reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
        return Answer(text, finish, tokens, max_tokens, reasoning=reasoning if isinstance(reasoning, str) else None)

    def _where(self) -> str:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or "api.openai.com"


__all__ = ["OpenAIBackend", "GiveUp", "Retry", "retry_after_seconds", "is_reasoning_model", "FocusError"]

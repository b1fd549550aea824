"""The `openai` backend: any OpenAI-compatible chat-completions endpoint (OpenAI, `vllm serve`,
Ollama, llama.cpp server) through `openai.AsyncOpenAI`.

At most `concurrency` requests are in flight (that many workers share one queue). The SDK's own
retries are off: this module retries 429, 5xx, dropped connections, timeouts and malformed or empty
answers with exponential backoff that honours `Retry-After`, and stops at once on 401/403/404.
The API key comes from OPENAI_API_KEY and never appears in output: messages are scrubbed of it.
"""
from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from typing import Sequence

from focusclip.data.errors import FocusError, fail
from focusclip.pipeline.describe.types import Answer, Emit, GenParams, Job

_PLACEHOLDER_KEY = "EMPTY"  # local servers (vllm serve, Ollama) accept any key


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

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key != _PLACEHOLDER_KEY else text

    def run(self, jobs: Sequence[Job], emit: Emit) -> None:
        if jobs:
            asyncio.run(self._run(list(jobs), emit))

    async def _run(self, jobs: list[Job], emit: Emit) -> None:
        import openai

        queue: asyncio.Queue[Job] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        client = openai.AsyncOpenAI(api_key=self._key, base_url=self.base_url,
                                    timeout=self.params.timeout_s, max_retries=0)
        async with client:
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

    async def _request(self, client, job: Job, max_tokens: int) -> Answer:
        """One HTTP request; raises Retry, GiveUp or FocusError (fatal for the whole run)."""
        import openai

        try:
            completion = await client.chat.completions.create(
                model=self.model, messages=job.prompt.messages, temperature=self.params.temperature,
                max_tokens=max_tokens, seed=job.seed)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise fail(f"the server refused the API key (HTTP {e.status_code})", self._where(),
                       "check OPENAI_API_KEY") from None
        except openai.NotFoundError:
            raise fail(f"model '{self.model}' or the chat-completions route was not found (HTTP 404)",
                       self._where(), "check --model and --base-url (it usually ends in /v1)") from None
        except openai.APIStatusError as e:
            if e.status_code in (408, 409, 429) or e.status_code >= 500:
                raise Retry(f"HTTP {e.status_code}", retry_after_seconds(e.response.headers)) from None
            raise GiveUp(f"HTTP {e.status_code}: {self._scrub(str(e.message))[:200]}") from None
        except openai.APIConnectionError as e:  # includes timeouts and dropped connections
            raise Retry(f"connection failed ({type(e).__name__})") from None
        except (ValueError, TypeError, KeyError, openai.APIResponseValidationError) as e:
            raise Retry(f"malformed response ({type(e).__name__})") from None
        return self._answer(completion, max_tokens)

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
        return Answer(text, finish, tokens, max_tokens)

    def _where(self) -> str:
        return self.base_url or "api.openai.com"


__all__ = ["OpenAIBackend", "GiveUp", "Retry", "retry_after_seconds", "FocusError"]

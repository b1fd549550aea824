"""A stand-in for the parts of vLLM's offline API the `vllm` backend uses (vLLM needs a GPU), written
against vLLM 0.34's source (vllm/entrypoints/llm.py, entrypoints/common/offline.py, sampling_params.py,
exceptions.py, renderers/params.py, config/model.py):

- `LLM(model, *, tensor_parallel_size, dtype, revision, max_num_seqs, max_model_len, ...)`;
  `llm.llm_engine.vllm_config.scheduler_config.max_num_seqs` is the given value or the default (256 on
  a GPU under 70 GiB);
- `LLM.get_default_sampling_params()`: `SamplingParams.from_optional(**diff)` where diff holds the
  model's generation_config.json values of vLLM's list (`ModelConfig.get_diff_sampling_param`), or a
  bare `SamplingParams()` when it sets none;
- `LLM.chat(conversations, sampling_params, use_tqdm, chat_template_kwargs=...)` renders and adds the
  requests one by one; a conversation longer than max_model_len raises `VLLMValidationError` ("This
  model's maximum context length is …") after aborting the requests already added, so nothing of that
  call is generated; a list of SamplingParams of another length raises VLLMValidationError too;
- `vllm.exceptions`: VLLMError(Exception) > VLLMClientError > VLLMValidationError, whose str() appends
  "(parameter=…, value=…)".

A "token" here is a whitespace-separated word of the messages (plus 3 per message for the template).
"""
from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

# ModelConfig.get_diff_sampling_param's list (vLLM 0.34)
_GENERATION_KEYS = ("repetition_penalty", "presence_penalty", "frequency_penalty", "temperature", "top_k",
                    "top_p", "min_p", "max_new_tokens", "skip_special_tokens")


class VLLMError(Exception):
    pass


class VLLMClientError(VLLMError):
    pass


class VLLMValidationError(VLLMClientError):
    def __init__(self, message: str, *, parameter: str | None = None, value=None):
        super().__init__(message)
        self.parameter, self.value = parameter, value

    def __str__(self):
        base = super().__str__()
        extras = [f"{k}={v}" for k, v in (("parameter", self.parameter), ("value", self.value)) if v is not None]
        return f"{base} ({', '.join(extras)})" if extras else base


class SamplingParams:
    """vLLM's defaults for the fields the backend sets; an unknown keyword is a TypeError, as msgspec's."""
    _DEFAULTS = dict(temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, repetition_penalty=1.0, presence_penalty=0.0,
                     frequency_penalty=0.0, max_tokens=16, seed=None, skip_special_tokens=True)

    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(self._DEFAULTS)
        if unknown:
            raise TypeError(f"Unexpected keyword argument {sorted(unknown)[0]!r}")
        for k, v in {**self._DEFAULTS, **kwargs}.items():
            setattr(self, k, v)
        if not 0.0 < self.top_p <= 1.0:
            raise VLLMValidationError(f"top_p must be in (0, 1], got {self.top_p}.", parameter="top_p",
                                      value=self.top_p)

    @classmethod
    def from_optional(cls, **kwargs):
        return cls(**{k: v for k, v in kwargs.items() if v is not None})


class FakeVLLM:
    """Installs `vllm` and `vllm.exceptions` in sys.modules; records every engine built (`engines`: its
    keyword arguments) and every chat call (`calls`: the conversations' last words, the sampling params,
    the chat template kwargs, and whether it was refused)."""

    def __init__(self, monkeypatch, gpu_default_seqs: int = 256, default_context: int = 32768):
        self.engines: list[dict] = []
        self.calls: list[dict] = []
        fake = self

        class LLM:
            def __init__(self, model: str, **kwargs):
                fake.engines.append({"model": model, **kwargs})
                self.model = model
                self.max_model_len = kwargs.get("max_model_len") or default_context
                seqs = kwargs.get("max_num_seqs") or gpu_default_seqs
                self.llm_engine = SimpleNamespace(vllm_config=SimpleNamespace(
                    scheduler_config=SimpleNamespace(max_num_seqs=seqs)))

            def get_default_sampling_params(self):
                path = Path(self.model) / "generation_config.json"
                config = json.loads(path.read_text()) if path.is_file() else {}
                diff = {k: config[k] for k in _GENERATION_KEYS if config.get(k) is not None}
                if "max_new_tokens" in diff:
                    diff["max_tokens"] = diff.pop("max_new_tokens")
                return SamplingParams.from_optional(**diff) if diff else SamplingParams()

            def chat(self, messages, sampling_params=None, use_tqdm=True, chat_template_kwargs=None, **kwargs):
                conversations = messages if messages and isinstance(messages[0], list) else [messages]
                params = sampling_params if isinstance(sampling_params, list) else \
                    [sampling_params or self.get_default_sampling_params()] * len(conversations)
                call = {"n": len(conversations), "params": params, "chat_template_kwargs": chat_template_kwargs,
                        "users": [c[-1]["content"] for c in conversations], "refused": False}
                fake.calls.append(call)
                if len(params) != len(conversations):
                    call["refused"] = True
                    raise VLLMValidationError(f"The lengths of prompts ({len(conversations)}) and params "
                                              f"({len(params)}) must be the same.")
                outputs = []
                for conversation, sp in zip(conversations, params):   # rendered and added one by one
                    n = sum(len(m["content"].split()) + 3 for m in conversation)
                    if n > self.max_model_len:
                        call["refused"] = True   # the requests added so far are aborted: nothing generated
                        raise VLLMValidationError(
                            f"This model's maximum context length is {self.max_model_len} tokens. However, "
                            f"your prompt contains {n} input tokens, which exceeds this limit even without any "
                            f"output tokens. Please reduce the length of the input prompt.",
                            parameter="input_tokens", value=n)
                    text = f"There is one person in the image. [seed {sp.seed}]"
                    outputs.append(SimpleNamespace(prompt_token_ids=[1] * n, outputs=[SimpleNamespace(
                        text=text, token_ids=[2] * min(9, sp.max_tokens), finish_reason="stop")]))
                return outputs

        exceptions = types.ModuleType("vllm.exceptions")
        exceptions.VLLMError, exceptions.VLLMClientError = VLLMError, VLLMClientError
        exceptions.VLLMValidationError = VLLMValidationError
        module = types.ModuleType("vllm")
        module.LLM, module.SamplingParams, module.exceptions = LLM, SamplingParams, exceptions
        module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
        monkeypatch.setitem(sys.modules, "vllm", module)
        monkeypatch.setitem(sys.modules, "vllm.exceptions", exceptions)
        self.module = module

    def generated(self) -> list[str]:
        """The user prompts of every conversation that was generated (in calls that were not refused)."""
        return [u for c in self.calls if not c["refused"] for u in c["users"]]

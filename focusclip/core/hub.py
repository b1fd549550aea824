"""Pretrained things (towers, tokenizers, CLIP baselines, describer LLMs) from a Hugging Face hub id or a
local `save_pretrained` folder, loaded the way transformers users know, or one line saying why not.

A hub id is downloaded and cached when the machine is online and taken from the cache otherwise:
`HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE`, `HF_ENDPOINT`, `HF_HOME` / `HF_HUB_CACHE` and `HF_TOKEN`
keep the meaning huggingface_hub gives them (this module reads them through huggingface_hub). Two
steps, so a caller can check everything before any work:

    src = resolve("bert-base-uncased", None, what="text tower", key="model.text.pretrained")
    model = load(src, AutoModel.from_pretrained, what="text tower", key="model.text.pretrained")

`resolve` downloads nothing: it checks a folder's config.json, or asks the hub for the id's
config.json (one HEAD request) and looks in the cache. It fails in one line when loading cannot work
(offline and not cached, an unknown or gated id, an unknown revision, the hub unreachable and nothing
cached). When the hub cannot be asked but the cache holds the files, the source says so and `load`
reads the cache without asking again (transformers would retry the hub for a minute first).
huggingface_hub and transformers are imported only inside the functions.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from focusclip.core.errors import fail


@dataclass(frozen=True)
class Source:
    """Where a pretrained thing comes from: `kind` is "hub", "folder" or "random" (no weights)."""
    kind: str
    name: Optional[str] = None          # hub id, or the folder's absolute path
    revision: Optional[str] = None      # the revision asked for (None: the default branch)
    commit: Optional[str] = None        # the commit it resolved to (hub), when known
    cached: Optional[bool] = None       # hub: its config.json was in the local cache before loading
    local_only: bool = False            # hub: read the cache without asking the hub (offline/unreachable)
    note: Optional[str] = None          # why local_only, or another fact worth printing

    def describe(self) -> str:
        """One line for logs and `--check`: 'hub bert-base-uncased@main (commit 86b5e09, in the cache)'."""
        if self.kind in ("random", "trained"):   # trained: a tokenizer fitted on the training texts
            return self.note or "random init"
        if self.kind == "folder":
            return f"folder {self.name}"
        facts = [f"commit {self.commit[:12]}" if self.commit else None,
                 "in the cache" if self.cached else "not in the cache: downloads on first use",
                 self.note]
        return f"hub {self.name}@{self.revision or 'main'} ({', '.join(f for f in facts if f)})"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and k != "local_only"}


RANDOM = Source("random")


def looks_like_folder(name: str) -> bool:
    """A path, not a hub id: absolute, relative (./, ../), ~, an existing directory, or more than one
    '/' (hub ids are `name` or `org/name`). transformers makes the same choice (an existing directory
    wins over a hub id)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or os.path.isdir(name)


def resolve(name: str, revision: Optional[str] = None, *, what: str, key: str,
            null_fix: Optional[str] = None, needs: str = "config.json") -> Source:
    """The source of `name` (hub id or folder), or a FocusError naming `what`, `key` and the fix.
    `needs` is a file every usable folder or repo has (config.json for models)."""
    if looks_like_folder(name):
        return _folder(name, revision, what=what, key=key, null_fix=null_fix, needs=needs)
    return _hub(name, revision, what=what, key=key, null_fix=null_fix, needs=needs)


def _or(fix: str, null_fix: Optional[str]) -> str:
    return f"{fix}, or {null_fix}" if null_fix else fix


def _folder(name: str, revision, *, what, key, null_fix, needs) -> Source:
    path = Path(name).expanduser().resolve()
    if revision:
        raise fail(f"{what}: a revision ({revision}) applies to hub ids, not to the folder {path}", key,
                   "drop the revision, or name the hub id")
    if not path.is_dir():
        raise fail(f"{what}: the folder {path} does not exist", key,
                   _or("fix the path, or give a hub id such as google/vit-base-patch16-224-in21k", null_fix))
    if not (path / needs).is_file():
        raise fail(f"{what}: {path} holds no {needs}, so it is not a save_pretrained folder", key,
                   _or("pass a folder written by save_pretrained (or `hf download ID --local-dir DIR`)", null_fix))
    return Source("folder", str(path))


def _hub(repo: str, revision, *, what, key, null_fix, needs) -> Source:
    from huggingface_hub import constants

    label = f"{repo}@{revision}" if revision else repo
    download = f"`hf download {repo}" + (f" --revision {revision}`" if revision else "`")
    cached = cached_commit(repo, revision, needs)
    if constants.HF_HUB_OFFLINE:
        if cached is None:
            var = "TRANSFORMERS_OFFLINE" if not os.environ.get("HF_HUB_OFFLINE") else "HF_HUB_OFFLINE"
            raise fail(f"{what}: {label} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                       f"{var}=1 forbids downloading it", key,
                       _or(f"download it first with {download} (same HF_HOME), or unset {var}", null_fix))
        return Source("hub", repo, revision, cached, True, True, "offline")
    status, detail = _ask_hub(repo, revision, needs)
    if status == "ok":
        return Source("hub", repo, revision, detail, cached == detail)
    if cached is not None and status in ("unreachable", "refused", "gated", "missing"):
        # what huggingface_hub itself does when the hub cannot or will not answer (down, offline, a gated
        # model without HF_TOKEN): use the cached snapshot, and say so
        return Source("hub", repo, revision, cached, True, True, f"hub: {detail}; using the cached copy")
    raise _hub_error(status, detail, what=what, key=key, label=label, download=download, null_fix=null_fix,
                     endpoint=constants.ENDPOINT, cache=constants.HF_HUB_CACHE, needs=needs)


def _hub_error(status: str, detail: str, *, what, key, label, download, null_fix, endpoint, cache, needs):
    if status == "gated":
        return fail(f"{what}: {label} is gated on {endpoint}", key,
                    "accept its terms on the model page and set HF_TOKEN to a token with access")
    if status == "missing":
        return fail(f"{what}: {label} is not a model on {endpoint} (or it is private and HF_TOKEN is not set)",
                    key, _or("check the id; set HF_TOKEN for a private model", null_fix))
    if status == "revision":
        return fail(f"{what}: {label}: no such revision on {endpoint}", key,
                    "check the revision (a branch, tag or commit of the model)")
    if status == "entry":
        return fail(f"{what}: {label} has no {needs} on {endpoint}, so transformers cannot load it", key,
                    _or("name a transformers model", null_fix))
    return fail(f"{what}: cannot get {label} from {endpoint} ({detail}) and it is not in the Hugging Face "
                f"cache ({cache})", key,
                _or(f"check the network or HF_ENDPOINT, or fetch it where there is a network with {download}",
                    null_fix))


def cached_commit(repo: str, revision: Optional[str], filename: str = "config.json") -> Optional[str]:
    """The commit of the cached snapshot holding `filename` for `revision`, or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, revision=revision)
    return Path(found).parent.name if isinstance(found, str) else None


def _ask_hub(repo: str, revision: Optional[str], filename: str) -> tuple[str, str]:
    """HEAD the repo's `filename`: ("ok", commit), or (problem, detail) with problem one of gated,
    missing, revision, entry, refused (another HTTP error) and unreachable (no answer)."""
    from huggingface_hub import errors, get_hf_file_metadata, hf_hub_url

    try:
        meta = get_hf_file_metadata(hf_hub_url(repo, filename, revision=revision))
    except errors.GatedRepoError:
        return "gated", "gated, and HF_TOKEN gives no access"
    except errors.RepositoryNotFoundError:
        return "missing", "repository not found"
    except errors.RevisionNotFoundError:
        return "revision", "revision not found"
    except errors.EntryNotFoundError:
        return "entry", f"no {filename}"
    except errors.HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "?")
        return "refused", f"the hub answered HTTP {status}"
    except Exception as e:   # no answer: connection refused, DNS, timeout, proxy (httpx/httpx2/requests)
        return "unreachable", _short(e)
    if not meta.commit_hash:
        return "refused", "the answer has no X-Repo-Commit header (HF_ENDPOINT is not a hub)"
    return "ok", meta.commit_hash


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


def load(source: Source, loader: Callable[..., Any], *, what: str, key: str,
         null_fix: Optional[str] = None, **kwargs) -> Any:
    """`loader(name_or_folder, revision=…, **kwargs)` (a `from_pretrained`) for a resolved source; its
    failures (a broken download, missing weights, a corrupt file) become one FocusError line."""
    assert source.kind in ("hub", "folder"), f"nothing to load for a {source.kind} source"
    if source.kind == "hub":
        kwargs["revision"] = source.revision
        if source.local_only:
            kwargs["local_files_only"] = True
    try:
        return loader(source.name, **kwargs)
    except Exception as e:
        if not _is_load_error(e):
            raise
        where = source.name if source.kind == "folder" else f"{source.name}@{source.revision or 'main'}"
        raise fail(f"{what}: cannot load {where} ({_short(e)})", key,
                   _or("check the files (a partial download is repaired by running again online)",
                       null_fix)) from None


def _is_load_error(e: BaseException) -> bool:
    """Errors of files and networks (OSError covers the hub's HTTP errors), not programming errors."""
    if isinstance(e, (OSError, ValueError, EnvironmentError)):
        return True
    return type(e).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3", "safetensors")


def local_file(source: Source, filename: str) -> Optional[Path]:
    """`filename` of a loaded source on this disk (the folder's, or the cached snapshot's), or None."""
    if source.kind == "folder":
        path = Path(source.name) / filename
        return path if path.is_file() else None
    if source.kind != "hub":
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source.name, filename, revision=source.commit or source.revision)
    return Path(found) if isinstance(found, str) else None


def weights_sha256(source: Source) -> Optional[str]:
    """SHA-256 of a loaded model's weights: `model.safetensors` (else `pytorch_model.bin`); for
    sharded weights, of the shards' hashes in index order. None when no weights file is on disk."""
    import hashlib
    import json

    for name in ("model.safetensors", "pytorch_model.bin"):
        path = local_file(source, name)
        if path is not None:
            return file_sha256(path)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        path = local_file(source, index)
        if path is not None:
            shards = sorted(set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values()))
            files = [local_file(source, s) for s in shards]
            if all(files):
                return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()
    return None


def file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def quiet_transformers():
    """No transformers progress bars ("Loading weights", "Writing model shards") while we save or
    load: our own bars and one-line messages are the only output."""
    from transformers.utils import logging as hf_logging

    was_disabled = hf_logging.is_progress_bar_enabled() is False
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not was_disabled:
            hf_logging.enable_progress_bar()

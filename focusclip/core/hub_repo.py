"""Talking to a Hugging Face hub repository, for every stage that does: check a repo id, commit a set of
files in one commit, download a snapshot, and turn the hub client's exceptions into one-line errors.

`focus-data publish --push` (a dataset) and `focus-train push` (a model) share the upload;
`focus-eval USER/NAME` and `focus-train`'s `data.dataset: USER/NAME` the download. The token comes
from `HF_TOKEN` (or a saved `hf auth login`) and never appears in a message: error texts are scrubbed.

`HfApi.upload_folder` is not used: with hf_xet installed it may split a large folder into several
commits, and a repo must change on the hub atomically (card and files together), so the one commit
is built by hand with `create_commit`.
"""
from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                    RepositoryNotFoundError, RevisionNotFoundError)

from focusclip.core.errors import FocusError, fail, printable

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
# Transport failures (refused, timeout) raise the HTTP client's HTTPError (httpx, or httpx2 in
# huggingface_hub 2.x); HfHubHTTPError derives from it, so take the class from there.
HTTP_ERROR = next(c for c in HfHubHTTPError.__mro__ if c.__name__ == "HTTPError")


def is_repo_id(value: str) -> bool:
    """`USER/NAME` as the hub spells repo ids (one slash, no `..`, no `.git` ending)."""
    return bool(REPO_ID.match(value)) and ".." not in value and not value.endswith((".git", "."))


def names_hub_repo(value: str) -> bool:
    """Whether a value given where a local path or a hub id is accepted means the hub: shaped
    USER/NAME, and neither it nor its first part exists locally (`out/published` with an `out/`
    folder here is a missing local folder, not a hub id)."""
    return is_repo_id(value) and not Path(value).exists() and not Path(value.split("/")[0]).exists()


def check_repo_id(repo_id: str, flag: str = "--repo-id") -> None:
    if not is_repo_id(repo_id):
        raise fail(f"{flag} '{repo_id}' is not a hub repo id", None, "write it as USER/NAME")


def write_token(flag: str) -> str:
    """The token for an upload; a user error before any work when there is none."""
    token = get_token()  # HF_TOKEN, else the saved `hf auth login`
    if not token:
        raise fail(f"no Hugging Face token for {flag}", "HF_TOKEN",
                   "set HF_TOKEN to a write token or run `hf auth login`")
    return token


def scrub(text: str, token: str | None) -> str:
    """A server's text as one line, with the token (if any) replaced by *** and control characters
    escaped (a hostile reply must not drive the terminal)."""
    return printable(" ".join((text.replace(token, "***") if token else text).split()))


def commit_files(repo_id: str, repo_type: str, files: dict[str, Path | bytes], *, token: str, private: bool,
                 message: str, description: str, delete=lambda remote, files: []) -> dict:
    """Create the repo if needed and commit `files` (path in repo → local file or bytes) in one commit.
    `delete(remote_paths, new_paths)` names remote files to delete in the same commit. Returns what
    a report records: repo, commit id and url, files added and deleted."""
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        remote = api.list_repo_files(url.repo_id, repo_type=repo_type)
        stale = sorted(delete(remote, set(files)))
        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=src if isinstance(src, bytes) else str(src))
               for p, src in sorted(files.items())]
        ops += [CommitOperationDelete(path_in_repo=p) for p in stale]
        info = api.create_commit(url.repo_id, ops, commit_message=message, commit_description=description,
                                 repo_type=repo_type)
    except (HTTP_ERROR, OSError, ValueError) as e:
        raise fail(f"push failed: {scrub(str(e), token)}", repo_id,
                   "check the repo id, that the token may write to it, and the network") from None
    # the server's words, printed and recorded: escaped as its error texts are
    return {"repo_id": printable(url.repo_id), "commit": printable(info.oid), "commit_url": printable(info.commit_url),
            "files": len(files), "deleted": stale, "private": private}


def download_snapshot(repo_id: str, repo_type: str = "model", ignore: tuple[str, ...] = ()) -> Path:
    """The repo's files in the local hub cache (downloaded if needed; `HF_HUB_OFFLINE=1` uses the
    cache only). Every failure is one line naming the repo and what to do."""
    from huggingface_hub import snapshot_download

    token = get_token()
    kind = "dataset" if repo_type == "dataset" else "model"
    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, ignore_patterns=list(ignore) or None))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise fail(f"no such {kind} on the hub, or it is private and the token cannot read it", repo_id,
                   "check the id (USER/NAME), or set HF_TOKEN to a token that may read it") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        raise offline_error(repo_id, kind, e) from None
    except (HTTP_ERROR, OSError) as e:
        raise fail(f"download failed: {scrub(str(e), token)}", repo_id, "check the network and the id") from None


def offline_error(repo_id: str, kind: str, e: Exception) -> FocusError:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return fail(f"this {kind} is not in the local hub cache and HF_HUB_OFFLINE is set", repo_id,
                    "unset HF_HUB_OFFLINE to download it once, or pass a local folder")
    return fail(f"cannot reach the hub and the {kind} is not in the local cache "
                f"({scrub(str(e), get_token())[:160]})", repo_id,
                "check the network (HF_ENDPOINT), or pass a local folder")

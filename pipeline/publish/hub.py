"""Upload a published folder to the Hugging Face hub in one commit.

Only this module touches the network, and only when `--push` is given. `HfApi.upload_folder` is not
used: with hf_xet installed it may split a large folder into several commits, and the dataset must
change on the hub atomically (card and shards together), so the commit is built by hand.
"""
from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError

from focusclip.data.errors import fail

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
# Files of the local folder that stay local: the run report names local paths.
LOCAL_ONLY = {"report.json"}
# Remote files this tool owns: shards of a previous push that the new folder no longer has are deleted
# in the same commit, so the card's `<config>/<split>-*.parquet` patterns never pick up stale shards.
# Transport failures (refused, timeout) raise the HTTP client's HTTPError (httpx, or httpx2 in
# huggingface_hub 2.x); HfHubHTTPError derives from it, so take the class from there.
_HTTP_ERROR = next(c for c in HfHubHTTPError.__mro__ if c.__name__ == "HTTPError")
_SHARD = re.compile(r"^[^/]+/[A-Za-z0-9_.]+-\d{5}-of-\d{5}\.parquet$")


def check_repo_id(repo_id: str) -> None:
    if not REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise fail(f"--repo-id '{repo_id}' is not a hub repo id", None, "write it as USER/NAME")


def folder_files(folder: Path) -> list[str]:
    """Paths (relative, POSIX) of the files to upload, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() not in LOCAL_ONLY)


def _scrub(text: str, token: str) -> str:
    return " ".join(text.replace(token, "***").split()) if token else " ".join(text.split())


def check_token() -> str:
    """The token `--push` will use (HF_TOKEN, else the saved `hf auth login`); a user error when
    there is none. Asked before the folder is built, so a missing token costs no build. Never shown."""
    token = get_token()
    if not token:
        raise fail("no Hugging Face token for --push", "HF_TOKEN",
                   "set HF_TOKEN to a write token or run `hf auth login`")
    return token


def push_folder(folder: Path, repo_id: str, private: bool, message: str, description: str) -> dict:
    """Create the dataset repo if needed and commit the folder's files in a single commit.
    Returns what the report records: repo, commit id and url, files added and stale shards deleted."""
    token = check_token()
    api = HfApi(token=token)
    files = folder_files(folder)
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        remote = api.list_repo_files(url.repo_id, repo_type="dataset")
        stale = sorted(p for p in remote if _SHARD.match(p) and p not in set(files))
        ops = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in files]
        ops += [CommitOperationDelete(path_in_repo=p) for p in stale]
        info = api.create_commit(url.repo_id, ops, commit_message=message, commit_description=description,
                                 repo_type="dataset")
    except (_HTTP_ERROR, OSError) as e:
        raise fail(f"push failed: {_scrub(str(e), token)}", repo_id,
                   "check the repo id, that the token may write to it, and the network") from None
    return {"repo_id": url.repo_id, "commit": info.oid, "commit_url": info.commit_url,
            "files": len(files), "deleted_stale_shards": stale, "private": private}

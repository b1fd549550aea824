"""Upload a published folder to the Hugging Face hub in one commit (`focusclip.core.hub_repo` builds
the commit). Only this module touches the network, and only when `--push` is given."""
from __future__ import annotations

import re
from pathlib import Path

from focusclip.core.hub_repo import check_repo_id, commit_files, write_token

__all__ = ["check_repo_id", "check_token", "folder_files", "push_folder"]

# Files of the local folder that stay local: the run report names local paths.
LOCAL_ONLY = {"report.json"}
# Remote files this tool owns: shards of a previous push that the new folder no longer has are deleted
# in the same commit, so the card's `<config>/<split>-*.parquet` patterns never pick up stale shards.
_SHARD = re.compile(r"^[^/]+/[A-Za-z0-9_.]+-\d{5}-of-\d{5}\.parquet$")


def folder_files(folder: Path) -> list[str]:
    """Paths (relative, POSIX) of the files to upload, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() not in LOCAL_ONLY)


def _stale_shards(remote: list[str], new: set[str]) -> list[str]:
    return [p for p in remote if _SHARD.match(p) and p not in new]


def check_token() -> str:
    """The token `--push` will use (HF_TOKEN, else the saved `hf auth login`); a user error when
    there is none. Asked before the folder is built, so a missing token costs no build. Never shown."""
    return write_token("--push")


def push_folder(folder: Path, repo_id: str, private: bool, message: str, description: str) -> dict:
    """Create the dataset repo if needed and commit the folder's files in a single commit.
    Returns what the report records: repo, commit id and url, files added and stale shards deleted."""
    token = check_token()
    files = {f: folder / f for f in folder_files(folder)}
    done = commit_files(repo_id, "dataset", files, token=token, private=private, message=message,
                        description=description, delete=_stale_shards)
    done["deleted_stale_shards"] = done.pop("deleted")
    return done

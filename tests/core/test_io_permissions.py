"""The atomic writer gives files the mode an ordinary write gives them (0666 less the umask), not
mkstemp's 0600; give_umask_mode does the same for files a library wrote privately."""
from __future__ import annotations

import os
import stat

import pytest

from focusclip.core.io import atomic_path, atomic_write_bytes, atomic_write_text, give_umask_mode, write_json, write_jsonl


@pytest.mark.parametrize("umask", [0o002, 0o022, 0o027, 0o077])
def test_atomic_writes_get_the_mode_of_an_ordinary_write(tmp_path, umask):
    old = os.umask(umask)
    try:
        (tmp_path / "plain.txt").write_text("x")
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_bytes(tmp_path / "b.bin", b"x")
        write_json(tmp_path / "c.json", {"a": 1})
        write_jsonl(tmp_path / "d.jsonl", [{"a": 1}])
        with atomic_path(tmp_path / "e.png") as tmp:
            tmp.write_bytes(b"\x89PNG")
        private = tmp_path / "f.safetensors"
        private.write_bytes(b"x")
        os.chmod(private, 0o600)             # as safetensors writes its files
        give_umask_mode([private])
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["plain.txt", "a.txt", "b.bin", "c.json", "d.jsonl", "e.png", "f.safetensors"],
                                  0o666 & ~umask)

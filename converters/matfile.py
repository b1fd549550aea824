"""Loading MATLAB v5 `.mat` files and reading their squeezed cells without tripping on MATLAB's shapes.

Every converter loads with `squeeze_me=True, struct_as_record=False` (see `LOADMAT_OPTIONS`): 1×1 numeric
cells arrive as plain Python numbers and structs as `mat_struct` objects with attribute access, which
makes per-joint parsing cheap. The price is MATLAB's ambiguity, which the helpers below absorb: a
struct array of one element arrives as a bare `mat_struct`, an empty cell as a size-0 ndarray, a
one-string cell as a bare `str`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from scipy.io.matlab import mat_struct

from focusclip.core.errors import fail

# Options of every loadmat call here; the convert benchmark times loadmat alone with the same ones.
LOADMAT_OPTIONS = {"squeeze_me": True, "struct_as_record": False, "chars_as_strings": True,
                   "verify_compressed_data_integrity": False}

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def load_mat(path: str | os.PathLike, variables: tuple[str, ...], fix: str) -> dict[str, Any]:
    """Load `variables` from a MATLAB v5 file; any unreadable or incomplete file is a one-line user error."""
    path = Path(path)
    if not path.is_file():
        raise fail("file not found", str(path), fix)
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"MATLAB 7.3") or head.startswith(_HDF5_MAGIC):
        raise fail("is a MATLAB v7.3 (HDF5) file, not the v5 .mat format", str(path),
                   "re-save it in MATLAB with save(..., '-v7') or use the official release file")
    if not head.startswith(b"MATLAB 5.0"):
        raise fail("is not a MATLAB .mat file (no 'MATLAB 5.0 MAT-file' header)", str(path), fix)
    try:
        data = scipy.io.loadmat(path, variable_names=list(variables), **LOADMAT_OPTIONS)
    except Exception as e:  # scipy raises ValueError, TypeError, OSError, zlib.error… for damaged files
        raise fail(f"cannot be read as a .mat file, it may be truncated or damaged "
                   f"({type(e).__name__}: {_one_line(e)})", str(path), fix) from None
    missing = [v for v in variables if v not in data]
    if missing:
        found = sorted(k for k, _, _ in _who(path))
        raise fail(f"has no variable {', '.join(missing)} (found: {', '.join(found) or 'none'})",
                   str(path), fix)
    return data


def _who(path: Path) -> list[tuple]:
    try:
        return scipy.io.whosmat(path)
    except Exception:  # a damaged directory listing is not worth a second error
        return []


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:200]


def items(x: Any) -> list:
    """The elements of a MATLAB array as a list: a bare struct/str/number becomes `[x]`, empty `[]`."""
    if isinstance(x, np.ndarray):
        return x.ravel().tolist() if x.size else []
    if x is None:
        return []
    return [x]


def number(x: Any) -> float | int | None:
    """A scalar cell as a Python number; empty, non-numeric or non-finite → None.

    uint8/uint16 cells arrive as Python ints after squeezing; a 1-element ndarray or numpy scalar is
    unwrapped; a char cell holding a number (`'3'`) is parsed."""
    t = type(x)
    if t is int:
        return x
    if t is float:
        return x if math.isfinite(x) else None
    if isinstance(x, (np.ndarray, np.generic)):
        if x.size != 1 or x.dtype.kind not in "biuf":
            return None
        return number(x.item() if x.dtype.kind != "b" else int(x.item()))
    if isinstance(x, str):
        try:
            return number(float(x.strip()))
        except ValueError:
            return None
    if isinstance(x, bool):
        return int(x)
    return None


def text(x: Any) -> str:
    """A char cell as a str; empty arrays (MATLAB `[]`) and non-text → ''. Several strings are joined."""
    if isinstance(x, str):
        return x
    if isinstance(x, np.ndarray) and x.size and x.dtype.kind in "UO":
        return " ".join(p for p in x.ravel().tolist() if isinstance(p, str))
    return ""


def strings(x: Any) -> list[str]:
    """A cell array of strings (or one bare string, or empty) as a list of non-empty strings."""
    out = []
    for s in items(x):
        s = text(s)
        if s.strip():
            out.append(s.strip())
    return out


def field(s: Any, name: str) -> Any:
    """Field `name` of a struct, or None when it is not a struct or has no such field."""
    return getattr(s, name, None) if isinstance(s, mat_struct) else None


def structs(x: Any) -> list[mat_struct]:
    """A struct array as a list of `mat_struct` (a bare struct is wrapped; empty and non-structs dropped)."""
    return [s for s in items(x) if isinstance(s, mat_struct)]


def is_struct(x: Any) -> bool:
    return isinstance(x, mat_struct)

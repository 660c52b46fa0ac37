"""Tokenizer files: pickle-free .npz written atomically, with a content hash over the metadata and arrays that
loading recomputes, so a corrupt or edited file is refused instead of silently used."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from etils import epath


def content_hash(meta: dict, arrays: dict) -> str:
    """sha256 of the metadata (as sorted JSON) and each array's name, shape and float32 little-endian bytes, in
    the order of `arrays`."""
    h = hashlib.sha256()
    h.update(json.dumps(meta, sort_keys=True).encode())
    for name, value in arrays.items():
        a = np.ascontiguousarray(np.asarray(value), dtype="<f4")
        h.update(f"{name}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_npz(path: str, arrays: dict, extra: dict) -> None:
    """Writes float32 `arrays` and `extra` (scalars, strings) to `path` via a temp file and a rename."""
    path = epath.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        np.savez(f, **{k: np.asarray(v, np.float32) for k, v in arrays.items()}, **extra)
    tmp.rename(path)


def read_npz(path: str) -> dict:
    with epath.Path(path).open("rb") as f, np.load(f, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}

"""The .npz files a run writes (tokenizers, training states, caches): pickle-free, written atomically, read with
one error line for a damaged file that names it and how to make it again. Tokenizer files also hold a content
hash over their metadata and arrays that loading recomputes, so an edited file is refused too."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
from etils import epath

from ldae_jax.errors import UserError, first_line
from ldae_jax.runtime import atomic


class DamagedFileError(UserError):
    """A file the run wrote earlier cannot be read back, or holds non-finite numbers."""


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


def save_npz(path: str, arrays: dict, extra: dict, dtype=np.float32) -> None:
    """Writes `arrays` as `dtype` and `extra` (scalars, strings) to `path` via a temp file and a rename (a temp
    file of its own per process: two writers never share one)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v, dtype) for k, v in arrays.items()}, **extra)
    atomic.write(path, buffer.getvalue())


def read_npz(path: str, remake: str = "delete it and rerun: the run makes it again") -> dict:
    """The arrays of an .npz written by `save_npz`; a truncated, corrupt or non-finite file is one
    DamagedFileError that names the file and what to do (`remake`)."""
    try:
        with epath.Path(path).open("rb") as f, np.load(f, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as e:
        reason = first_line(e) or type(e).__name__
        raise DamagedFileError(f"{path} is damaged and cannot be read ({reason}); {remake}") from None
    bad = [k for k, v in data.items() if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all()]
    if bad:
        raise DamagedFileError(f"{path} holds NaN or inf values (in {', '.join(bad[:3])}): a damaged file, or one "
                               f"made from a diverged fit; {remake}")
    return data

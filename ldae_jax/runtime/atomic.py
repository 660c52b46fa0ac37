"""Files a run writes are replaced whole: written to a temporary file beside them, then renamed over them. A full
disk or a kill mid-write leaves the previous version (or none), never half a file; through etils.epath, on a
local disk and on gs:// alike."""

from __future__ import annotations

import uuid

from etils import epath


def write(path, data: str | bytes) -> None:
    """Replace `path` with `data`; the temporary file has a name of its own, so concurrent writers never share one,
    and a failed write removes it."""
    path = epath.Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        tmp.replace(path)  # overwrites an existing file (a rename would refuse on gs://)
    finally:
        if tmp.exists():
            tmp.unlink()

"""Writing a matplotlib figure to a PNG file (local or `gs://`) atomically: a temporary name, then a rename, so a
reader never sees half a file."""

from __future__ import annotations

import io

from etils import epath

from ldae_jax.runtime import atomic


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed); imported when first drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str, dpi: int = 110) -> str:
    """Saves and closes `fig`; creates the parent folder. Returns the path as a string."""
    import matplotlib.pyplot as plt  # the figure exists, so its backend is already chosen

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write(path, buffer.getvalue())
    return str(path)

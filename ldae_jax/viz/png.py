"""Writing a matplotlib figure to a PNG file (local or `gs://`) atomically: a temporary name, then a rename, so a
reader never sees half a file."""

from __future__ import annotations

import io

from etils import epath

from ldae_jax.runtime import atomic


KIND_NAMES = {"pca": "PCA", "patch_ae": "patch AE", "patch_vae": "patch VAE", "conv_vae": "conv VAE",
              "pixel": "pixel"}


def kind_name(kind: str) -> str:
    """A tokenizer kind as a figure's title writes it ('pca' -> 'PCA')."""
    return KIND_NAMES.get(kind, kind)


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


def to_tensorboard(workdir: str, step: int, name: str, path: str) -> None:
    """The PNG at `path` as an image in the run's TensorBoard (its IMAGES tab), at `step`."""
    import matplotlib.image
    import numpy as np
    from clu import metric_writers

    with epath.Path(path).open("rb") as f:
        image = matplotlib.image.imread(f, format="png")  # float [H, W, 3 or 4] in [0, 1]
    image = (np.asarray(image)[..., :3] * 255).round().astype(np.uint8)
    writer = metric_writers.create_default_writer(workdir, asynchronous=False)
    writer.write_images(step, {name: image[None]})
    writer.close()

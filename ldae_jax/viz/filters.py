"""Figure 4: a patch tokenizer's basis as image patches, one per latent dimension.

PCA: the top-d principal directions (rows of V), by decreasing explained variance, each titled with its share
of the patch variance. Patch AE / VAE: the rows of the decoder (d x D), in the stored order. Each filter is
scaled by its own largest absolute value, so mid-grey is zero.
"""

from __future__ import annotations

import math

import numpy as np
from etils import epath

from ldae_jax.errors import UserError
from ldae_jax.tokenizers import files, patch_ae, pca as pca_lib, registry
from ldae_jax.viz import png
from ldae_jax.viz.workdir import require_tokenizer_file

FILES = {k.name: k.file for k in registry.KINDS.values() if k.file and k.patchwise}  # the kinds with a patch basis


def check_has_basis(config) -> None:
    kind = config.tokenizer.kind
    if kind not in FILES:
        raise UserError(f"tokenizer.kind={kind!r} has no patch basis to draw (filters need one of "
                        f"{', '.join(FILES)}; 'pixel' is the identity and 'conv_vae' is convolutional)")


def load_basis(config, workdir: str) -> tuple[np.ndarray, list[str], int, int]:
    """(filters [d, p, p, C], one caption each, p, C) from the workdir's tokenizer file, checked like a run does."""
    check_has_basis(config)
    kind = config.tokenizer.kind
    require_tokenizer_file(config, workdir)
    path = epath.Path(workdir) / FILES[kind]
    channels = int(files.read_npz(str(path))["channels"])
    p, d = config.tokenizer.patch_size, config.tokenizer.d
    if kind == "pca":
        tok = pca_lib.load(str(path), patch_size=p, channels=channels, d=d, whiten=config.tokenizer.pca.whiten)
        eig = np.asarray(tok.eigenvalues, np.float64)
        rows = np.asarray(tok.components)[:d]
        captions = [f"{100 * e / eig.sum():.1f}%" for e in eig[:d]]
    else:
        tok = patch_ae.load(str(path), patch_size=p, channels=channels, d=d, variational=kind == "patch_vae")
        rows = np.asarray(tok.decoder)
        captions = [f"#{i}" for i in range(d)]
    return rows.reshape(d, p, p, channels), captions, p, channels


def plot_filters(filters: np.ndarray, captions: list[str], path: str, title: str = "") -> str:
    """filters [n, p, p, C] -> a grid of small images, one per filter."""
    plt = png.pyplot()

    n = filters.shape[0]
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.25 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        f = filters[i].astype(np.float64)
        f = 0.5 + 0.5 * f / max(np.abs(f).max(), 1e-12)
        ax = axes.ravel()[i]
        ax.imshow(f[..., 0] if f.shape[-1] == 1 else f, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(captions[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return png.save_figure(fig, path)


def write_filters_figure(config, workdir: str, path: str) -> str:
    filters, captions, p, channels = load_basis(config, workdir)
    kind = config.tokenizer.kind
    what = "principal directions, % of patch variance" if kind == "pca" else "decoder rows"
    title = (f"{png.kind_name(kind)} basis, d={filters.shape[0]} of D={p * p * channels} "
             f"({p}x{p}x{channels} patches; {what})")
    return plot_filters(filters, captions, path, title)

"""MAE's figure (its paper's Figure 2): test images, what the encoder sees of them (the visible quarter, the rest
grey), the decoder's reconstruction, and the reconstruction with the visible patches pasted back. With the
normalised-pixel target the prediction of each patch is put back in pixels with that patch's own mean and
variance, as MAE's visualisation does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx
from jax.experimental import multihost_utils

from ldae_jax import objectives
from ldae_jax.tokenizers.patches import patchify, unpatchify
from ldae_jax.train import state as state_lib
from ldae_jax.viz import png
from ldae_jax.viz.denoising import first_test_images

COLUMNS = ("original", "visible to the encoder", "reconstruction", "reconstruction + visible")


def panels(model, objective, images: np.ndarray, patch_size: int, seed: int = 0) -> dict:
    """{column: images [B, H, W, C] in [-1, 1]} for uint8 images [B, H, W, C]."""
    x0 = jnp.asarray(images, jnp.float32) / 127.5 - 1.0
    b, h, w, c = x0.shape
    patches = patchify(x0, patch_size)
    keep, mask = objectives.random_keep(jax.random.key(seed), b, patches.shape[1], objective.mask_ratio)
    pred = model(patches, keep)
    if objective.norm_pix:  # back to pixels with each patch's own statistics
        pred = pred * jnp.sqrt(patches.var(-1, keepdims=True) + 1e-6) + patches.mean(-1, keepdims=True)
    hidden = mask[..., None] > 0
    out = {"original": patches, "visible to the encoder": jnp.where(hidden, 0.0, patches), "reconstruction": pred,
           "reconstruction + visible": jnp.where(hidden, pred, patches)}
    return {k: np.asarray(unpatchify(v, patch_size, h, w, c)) for k, v in out.items()}


def write_reconstruction_figure(exp, *, num_images: int = 4, path: str | None = None) -> str:
    """Draw `path` (default `workdir/reconstruction.png`) from the run's latest checkpoint and the first test
    images."""
    step, params = exp.restore_params()
    images = first_test_images(exp, num_images)
    params = multihost_utils.process_allgather(params, tiled=True)  # every host joins; host 0 draws
    path = path or str(epath.Path(exp.workdir) / "reconstruction.png")
    if jax.process_index() != 0:
        return str(path)
    model = nnx.merge(state_lib.model_graph(exp.model_cfg), params)
    shown = panels(model, exp.objective, images, exp.config.tokenizer.patch_size, seed=exp.config.seed)
    plt = png.pyplot()
    fig, axes = plt.subplots(num_images, len(COLUMNS), figsize=(1.6 * len(COLUMNS), 1.6 * num_images + 0.5),
                             squeeze=False)
    for i in range(num_images):
        for j, name in enumerate(COLUMNS):
            pic = np.clip((shown[name][i] + 1) / 2, 0, 1)
            axes[i, j].imshow(pic[..., 0] if pic.shape[-1] == 1 else pic, cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(name, fontsize=7)
    ratio = int(round(100 * exp.objective.mask_ratio))
    fig.suptitle(f"MAE, step {step}: {ratio}% of the patches masked", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    png.save_figure(fig, path)
    png.to_tensorboard(exp.workdir, step, "reconstruction", path)
    return str(path)

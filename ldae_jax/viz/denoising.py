"""Figures 7 and 8: clean / noised in the tokenizer's latent / noised in pixels at the same sigma, and, when a
model is given, denoised by it.

Pixel noise and latent noise are comparable because the PCA basis is orthonormal: without whitening, a
latent coordinate is in pixel units (docs/paper_notes.md Fig. 7 and 8).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from etils import epath  # noqa: E402
from flax import nnx  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from ldae_jax import diffusion, objectives  # noqa: E402
from ldae_jax.data import pipeline  # noqa: E402
from ldae_jax.train import state as state_lib  # noqa: E402
from ldae_jax.tokenizers.patches import unpatchify  # noqa: E402
from ldae_jax.viz import png  # noqa: E402

COLUMNS = ("clean", "latent noise", "pixel noise", "denoised")


def noise_panels(tok, schedule, images: np.ndarray, sigmas, seed: int = 0,
                 denoise: Callable | None = None) -> dict:
    """{column: [len(sigmas), B, H, W, C] in [-1, 1]} for images uint8 [B, H, W, C]; each sigma is the
    schedule's nearest step. The 'denoised' column is there only with `denoise` ((z_t [B, N, d], t [B]) ->
    images [B, H, W, C])."""
    x0 = jnp.asarray(images, jnp.float32) / 127.5 - 1.0
    b, h, w, _ = x0.shape
    z0 = tok.image_latents(x0)
    sched_sigma = np.asarray(schedule.sigma)
    out = {k: [] for k in COLUMNS if k != "denoised" or denoise is not None}
    key = jax.random.key(seed)
    for i, sigma in enumerate(sigmas):
        t = int(np.argmin(np.abs(sched_sigma - sigma)))
        steps = jnp.full((b,), t, jnp.int32)
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        z_t = diffusion.add_noise(schedule, z0, steps, jax.random.normal(k1, z0.shape))
        out["clean"].append(x0)
        out["latent noise"].append(tok.latent_images(z_t, h, w))
        out["pixel noise"].append(x0 + sched_sigma[t] * jax.random.normal(k2, x0.shape))
        if denoise is not None:
            out["denoised"].append(denoise(z_t, steps))
    return {k: np.asarray(jnp.stack(v)) for k, v in out.items()}


def model_denoiser(graphdef, params, tok, schedule, objective, image_shape) -> Callable:
    """(z_t, t) -> the model's clean image [B, H, W, C], whatever its input, output and target."""
    model = nnx.merge(graphdef, params)
    h, w, c = image_shape

    def denoise(z_t, steps):
        tokens = objectives.tokens_from_latents(objective, tok, z_t)
        labels = objectives.null_labels(objective, z_t.shape[0])
        pred, _ = objectives.split_output(objective, model(tokens, steps, labels))
        if objective.target == "eps":  # the clean latent implied by the predicted noise
            gamma, sig = diffusion.coefficients(schedule, steps, 3)
            return tok.latent_images(diffusion.eps_to_x0(z_t, pred, gamma, sig), h, w)
        if objective.output == "latent":
            return tok.latent_images(pred, h, w)
        return unpatchify(pred, tok.patch_size, h, w, c)

    return denoise


def denoising_panels(graphdef, params, tok, schedule, objective, images: np.ndarray, sigmas, seed: int = 0) -> dict:
    """`noise_panels` with the model's 'denoised' column."""
    denoise = model_denoiser(graphdef, params, tok, schedule, objective, images.shape[1:])
    return noise_panels(tok, schedule, images, sigmas, seed, denoise=denoise)


def plot_denoising(panels: dict, sigmas, path: str, title: str = "") -> None:
    """One row per image: the clean image, then (latent noise, pixel noise[, denoised]) at each sigma."""
    num_sigmas, num_images = panels["clean"].shape[:2]
    shown = [name for name in COLUMNS[1:] if name in panels]
    cols = [("clean", 0)] + [(name, s) for s in range(num_sigmas) for name in shown]
    fig, axes = plt.subplots(num_images, len(cols), figsize=(1.05 * len(cols), 1.15 * num_images + 0.6), squeeze=False)
    for img in range(num_images):
        for col, (name, s) in enumerate(cols):
            ax = axes[img, col]
            pic = np.clip((panels[name][s, img] + 1) / 2, 0, 1)
            ax.imshow(pic[..., 0] if pic.shape[-1] == 1 else pic, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if img == 0:
                label = name if name == "clean" else f"{name}\nσ={sigmas[s]:.2f}"
                ax.set_title(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97) if title else None)
    png.save_figure(fig, path)


def first_test_images(run, num_images: int) -> np.ndarray:
    """The first `num_images` images [B, H, W, C] uint8 of the eval split of the run `run` (its Experiment)."""
    config = run.config
    batch = next(
        pipeline.eval_batches(
            run.builder, split=config.data.eval_split, global_batch_size=num_images,
            image_size=config.data.image_size, process_index=0, process_count=1,
            in_memory_mb=config.data.in_memory_mb,
        )
    )
    return batch["image"]


def write_denoising_figure(exp, *, num_images: int = 3, sigmas=(0.25, 0.5, 1.0, 1.41),
                           path: str | None = None) -> str:
    """Draw `path` (default `workdir/denoising.png`) from the run's latest checkpoint and the first test images."""
    run, config, workdir = exp, exp.config, exp.workdir
    step, params = exp.restore_params()
    images = first_test_images(run, num_images)
    params = multihost_utils.process_allgather(params, tiled=True)  # every host joins; host 0 draws
    path = path or str(epath.Path(workdir) / "denoising.png")
    if jax.process_index() == 0:
        panels = denoising_panels(
            state_lib.model_graph(run.model_cfg), params, exp.tokenizer, run.schedule, run.objective,
            images, sigmas, seed=config.seed,
        )
        title = (f"step {step}: the model's denoising of noise in a d={exp.tokenizer.d} "
                 f"{png.kind_name(config.tokenizer.kind)} latent, next to the same σ in pixels")
        plot_denoising(panels, sigmas, path, title=title)
        png.to_tensorboard(workdir, step, "denoising", path)
    return str(path)

"""Figure: clean / noised in the PCA latent / noised in pixels at the same sigma / denoised by the model.

Pixel noise and latent noise are comparable because the PCA basis is orthonormal: without whitening, a
latent coordinate is in pixel units (PAPER.md Fig. 7 and 8).
"""

from __future__ import annotations

import io

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
from ldae_jax.tokenizers import tokenizer as tok_lib  # noqa: E402
from ldae_jax.tokenizers.patches import unpatchify  # noqa: E402

COLUMNS = ("clean", "latent noise", "pixel noise", "denoised")


def denoising_panels(graphdef, params, tok, schedule, objective, images: np.ndarray, sigmas, seed: int = 0) -> dict:
    """{column: [len(sigmas), B, H, W, C] in [-1, 1]} for images uint8 [B, H, W, C]."""
    x0 = jnp.asarray(images, jnp.float32) / 127.5 - 1.0
    b, h, w, c = x0.shape
    z0 = tok_lib.image_latents(tok, x0)
    model = nnx.merge(graphdef, params)
    sched_sigma = np.asarray(schedule.sigma)
    out = {k: [] for k in COLUMNS}
    key = jax.random.key(seed)
    for i, sigma in enumerate(sigmas):
        t = int(np.argmin(np.abs(sched_sigma - sigma)))
        steps = jnp.full((b,), t, jnp.int32)
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        noise = jax.random.normal(k1, z0.shape)
        z_t = diffusion.add_noise(schedule, z0, steps, noise)
        tokens = objectives.tokens_from_latents(objective, tok, z_t)
        pred, _ = objectives.split_output(objective, model(tokens, steps, objectives.null_labels(objective, b)))
        if objective.target == "eps":  # the clean latent implied by the predicted noise
            gamma, sig = diffusion.coefficients(schedule, steps, 3)
            denoised = tok_lib.latent_images(tok, diffusion.eps_to_x0(z_t, pred, gamma, sig), h, w)
        elif objective.output == "latent":
            denoised = tok_lib.latent_images(tok, pred, h, w)
        else:
            denoised = unpatchify(pred, tok.patch_size, h, w, c)
        out["clean"].append(x0)
        out["latent noise"].append(tok_lib.latent_images(tok, z_t, h, w))
        out["pixel noise"].append(x0 + sched_sigma[t] * jax.random.normal(k2, x0.shape))
        out["denoised"].append(denoised)
    return {k: np.asarray(jnp.stack(v)) for k, v in out.items()}


def plot_denoising(panels: dict, sigmas, path: str, title: str = "") -> None:
    """One row per image: the clean image, then (latent noise, pixel noise, denoised) at each sigma."""
    num_sigmas, num_images = panels["clean"].shape[:2]
    cols = [("clean", 0)] + [(name, s) for s in range(num_sigmas) for name in COLUMNS[1:]]
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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    epath.Path(path).write_bytes(buffer.getvalue())


def write_denoising_figure(config, workdir: str, *, num_images: int = 3, sigmas=(0.25, 0.5, 1.0, 1.41)) -> str:
    """Draw `workdir/denoising.png` from the run's latest checkpoint and the first test images."""
    from ldae_jax.data import pipeline
    from ldae_jax.train import pretrain, state as state_lib

    run = pretrain.setup_run(config, workdir)
    step, params = pretrain.restore_params(config, workdir, run)
    batch = next(
        pipeline.eval_batches(
            run.builder, split=config.data.eval_split, global_batch_size=num_images,
            image_size=config.data.image_size, process_index=0, process_count=1,
        )
    )
    params = multihost_utils.process_allgather(params, tiled=True)  # every host joins; host 0 draws
    path = epath.Path(workdir) / "denoising.png"
    if jax.process_index() == 0:
        panels = denoising_panels(
            state_lib.model_graph(run.model_cfg), params, run.tokenizer, run.schedule, run.objective,
            batch["image"], sigmas, seed=config.seed,
        )
        title = f"step {step}: noise in a d={run.tokenizer.d} {config.tokenizer.kind} latent"
        plot_denoising(panels, sigmas, path, title=title)
    return str(path)

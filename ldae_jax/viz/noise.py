"""Figure 7: test images clean, with Gaussian noise added in the tokenizer's latent (seen through its decoder),
and with noise of the same sigma added to the pixels; the tokenizer only, no model.

Noise is added without input scaling (z_t = z_0 + sigma eps), as the paper's figure shows it, whatever
schedule the run trained with.
"""

from __future__ import annotations

import math

from ldae_jax import diffusion
from ldae_jax.viz import denoising, png

SIGMAS = (0.25, math.sqrt(1 / 3), 1.0)  # sqrt(1/3): the likely reading (paper notes 2.2)


def write_noise_figure(exp, path: str, *, num_images: int = 4, sigmas=SIGMAS, seed: int = 0) -> str:
    """Draws `path` from the run's tokenizer and the first test images of its eval split."""
    run, config = exp, exp.config
    images = denoising.first_test_images(run, num_images)
    schedule = diffusion.sigma_linear(config.noise.T, sigma_max=max(2.0, max(sigmas) * 1.01))
    panels = denoising.noise_panels(run.tokenizer, schedule, images, sigmas, seed=seed)
    whiten = " (whitened)" if getattr(run.tokenizer, "whiten", False) else ""
    title = (f"noise in a d={run.tokenizer.d} {png.kind_name(config.tokenizer.kind)} latent{whiten} "
             f"vs the same σ in pixels (patch {run.tokenizer.patch_size})")
    denoising.plot_denoising(panels, sigmas, path, title=title)
    return path

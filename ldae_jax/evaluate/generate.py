"""Images from a trained ladder model: the sampler run in batches and decoded by the run's tokenizer; for the
samples figure and the FID column of Table 1."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ldae_jax.evaluate import sampler
from ldae_jax.runtime import preemption, timings
from ldae_jax.train import state as state_lib


def balanced_labels(obj, n: int):
    """Labels 0, 1, ..., num_classes - 1, 0, ... for a class-conditional model (as FID-50K's 50 per class), else None."""
    return jnp.arange(n) % obj.num_classes if obj.num_classes else None


def generate_images(run, params, n: int, key, *, labels=None, num_steps: int = 50, eta: float = 0.0,
                    guidance: float = 0.0, batch_size: int = 256, progress: str | None = None) -> np.ndarray:
    """n images [n, S, S, C] in [-1, 1] (float32) from the model `params` of the run `run` (its Experiment);
    labels [n] if class-conditional. `progress` names the work in the console's `NAME: n/N images (p%), ETA ...`
    lines (timings.Countdown; None: silent)."""
    obj, size = run.objective, run.config.data.image_size
    if obj.num_classes and labels is None:
        raise ValueError("a class-conditional model needs labels to generate (see balanced_labels)")
    graphdef = state_lib.model_graph(run.model_cfg)

    @jax.jit  # compiled once for every batch (the parameters and labels are arguments, not constants)
    def estimate(params, z_t, t, y):
        return sampler.guided_clean_latent(nnx.merge(graphdef, params), obj, run.tokenizer, run.schedule, z_t, t,
                                           y, guidance)

    countdown = timings.Countdown(progress or "", n, "images", quiet=progress is None)
    out = []
    for i, start in enumerate(range(0, n, batch_size)):
        preemption.stop_here("the generation of images")
        b = min(batch_size, n - start)
        batch_labels = None if labels is None else labels[start:start + b]

        def x0_fn(z_t, t, y=batch_labels):
            return estimate(params, z_t, t, y)

        shape = (b, run.model_cfg.num_tokens, run.tokenizer.d)
        z = sampler.sample(x0_fn, run.schedule, shape, jax.random.fold_in(key, i), num_steps=num_steps, eta=eta)
        out.append(np.clip(np.asarray(run.tokenizer.latent_images(z, size, size)), -1.0, 1.0))
        countdown.update(start + b)
    if progress is not None:
        countdown.finish(f"{n} images")
    return np.concatenate(out)

"""Figure 3: the noise schedules of `ldae_jax.diffusion` against t.

Left, the signal fraction gamma_t^2 the paper plots; for the schedules without input scaling (gamma_t = 1) it is
the gamma^2 of their variance-preserving rescaling, 1 / (1 + sigma_t^2), so all four share one axis. Right, the
noise-to-signal ratio sigma_t / gamma_t in log scale, where the DDPM schedule's long stretch near pure noise shows.
"""

from __future__ import annotations

import numpy as np

from ldae_jax import diffusion
from ldae_jax.viz import png

LABELS = {
    "ddpm_linear_beta": "DDPM linear β (DiT)",
    "linear_gamma_sq": "linear γ²",
    "sigma_linear": "σ linear to √2, γ = 1 (l-DAE)",
    "single_level": "single level σ = √(1/3)",
}


def signal_fraction(schedule: diffusion.Schedule) -> np.ndarray:
    """gamma_t^2 / (gamma_t^2 + sigma_t^2) [T]: gamma_t^2 itself for variance-preserving schedules."""
    gamma, sigma = np.asarray(schedule.gamma, np.float64), np.asarray(schedule.sigma, np.float64)
    return gamma**2 / (gamma**2 + sigma**2)


def plot_schedules(path: str, *, T: int = 1000, highlight: diffusion.Schedule | None = None) -> str:
    """Draws the four schedules at their defaults; `highlight` (a run's own schedule) is drawn bold on top."""
    plt = png.pyplot()

    schedules = [diffusion.get_schedule(name, T) for name in diffusion.SCHEDULES]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    t = np.arange(T)
    for i, sched in enumerate(schedules):
        color = f"C{i}"
        ratio = np.asarray(sched.sigma, np.float64) / np.asarray(sched.gamma, np.float64)
        faint = highlight is not None
        style = dict(color=color, lw=1.2, alpha=0.45 if faint else 1.0)
        left.plot(t, signal_fraction(sched), label=LABELS[sched.name], **style)
        right.plot(t[1:], np.maximum(ratio[1:], 1e-4), **style)  # t = 0 is clean (ratio 0) for two of them
    if highlight is not None:
        i = list(diffusion.SCHEDULES).index(highlight.name)
        ht = np.arange(highlight.num_steps)
        ratio = np.asarray(highlight.sigma, np.float64) / np.asarray(highlight.gamma, np.float64)
        left.plot(ht, signal_fraction(highlight), color=f"C{i}", lw=3, label=f"this run: {highlight.name}")
        right.plot(ht[1:], np.maximum(ratio[1:], 1e-4), color=f"C{i}", lw=3)
    left.set_ylabel("γ_t² (variance-preserving)")
    left.set_ylim(-0.02, 1.02)
    right.set_yscale("log")
    right.set_ylabel("σ_t / γ_t (log)")
    for ax in (left, right):
        ax.set_xlabel("time step t")
        ax.set_xlim(0, T)
        ax.grid(alpha=0.3)
    left.legend(fontsize=7, loc="upper right")
    fig.suptitle("noise schedules (paper Figure 3)", fontsize=9)
    fig.tight_layout()
    return png.save_figure(fig, path)

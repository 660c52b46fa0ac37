"""Figure 3: the noise schedules of `ldae_jax.diffusion` against t.

Left, the signal fraction gamma_t^2 / (gamma_t^2 + sigma_t^2) the paper plots: gamma_t^2 itself for the
variance-preserving schedules; for the schedules without input scaling (gamma_t = 1, sigma_t grows) it is the
gamma^2 of their variance-preserving rescaling, 1 / (1 + sigma_t^2), so all four share one axis. Right, the
noise-to-signal ratio sigma_t / gamma_t in log scale, where the DDPM schedule's long stretch near pure noise shows.
One legend below both panels (a schedule has the same colour in each).
"""

from __future__ import annotations

import numpy as np

from ldae_jax import diffusion
from ldae_jax.viz import png


def label(schedule: diffusion.Schedule) -> str:
    """What the schedule is, in the legend's words: its formula, and 'no input scaling' where gamma_t = 1 (the
    curve on the left is then its rescaled signal fraction, which falls; gamma itself stays 1)."""
    sigma = np.asarray(schedule.sigma, np.float64)
    if schedule.name == "ddpm_linear_beta":
        return "DDPM linear β (DiT)"
    if schedule.name == "linear_gamma_sq":
        return "linear γ² = 1 − t/T"
    if schedule.name == "sigma_linear":
        top = sigma[-1] * schedule.num_steps / max(schedule.num_steps - 1, 1)  # sigma_max: sigma_t = sigma_max t/T
        top_text = "√2" if abs(top - np.sqrt(2.0)) < 1e-4 else f"{top:.3g}"
        return f"σ linear to {top_text}, no input scaling (l-DAE)"
    if schedule.name == "single_level":
        level_text = "√(1/3)" if abs(sigma[0] - np.sqrt(1 / 3)) < 1e-4 else f"{sigma[0]:.3g}"
        return f"single level σ = {level_text}, no input scaling"
    return schedule.name


def signal_fraction(schedule: diffusion.Schedule) -> np.ndarray:
    """gamma_t^2 / (gamma_t^2 + sigma_t^2) [T]: gamma_t^2 itself for variance-preserving schedules."""
    gamma, sigma = np.asarray(schedule.gamma, np.float64), np.asarray(schedule.sigma, np.float64)
    return gamma**2 / (gamma**2 + sigma**2)


def draw_schedules(*, T: int = 1000, highlight: diffusion.Schedule | None = None):
    """The figure of the four schedules at their defaults; `highlight` (a run's own schedule) is drawn bold on
    top, its legend entry 'this run: ...'."""
    plt = png.pyplot()

    schedules = [diffusion.get_schedule(name, T) for name in diffusion.SCHEDULES]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4))
    t = np.arange(T)
    faint = highlight is not None
    for i, sched in enumerate(schedules):
        ratio = np.asarray(sched.sigma, np.float64) / np.asarray(sched.gamma, np.float64)
        style = dict(color=f"C{i}", lw=1.2, alpha=0.45 if faint else 1.0)
        left.plot(t, signal_fraction(sched), label=label(sched), **style)
        right.plot(t[1:], np.maximum(ratio[1:], 1e-4), **style)  # t = 0 is clean (ratio 0) for two of them
    if highlight is not None:
        i = list(diffusion.SCHEDULES).index(highlight.name)
        ht = np.arange(highlight.num_steps)
        ratio = np.asarray(highlight.sigma, np.float64) / np.asarray(highlight.gamma, np.float64)
        left.plot(ht, signal_fraction(highlight), color=f"C{i}", lw=3, label=f"this run: {label(highlight)}")
        right.plot(ht[1:], np.maximum(ratio[1:], 1e-4), color=f"C{i}", lw=3)
    left.set_ylabel("signal fraction γ² / (γ² + σ²)")
    left.set_title("signal fraction (γ_t² when variance-preserving)", fontsize=9)
    left.set_ylim(-0.02, 1.02)
    right.set_yscale("log")
    right.set_ylabel("σ_t / γ_t")
    right.set_title("noise-to-signal ratio (log scale)", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("time step t")
        ax.set_xlim(0, T)
        ax.grid(alpha=0.3)
    handles, names = left.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3 if len(names) > 4 else 2, fontsize=8, frameon=False)
    fig.suptitle("noise schedules (paper Figure 3)", fontsize=10)
    fig.tight_layout(rect=(0, 0.11, 1, 1))
    return fig


def plot_schedules(path: str, *, T: int = 1000, highlight: diffusion.Schedule | None = None) -> str:
    """Draws the four schedules at their defaults into `path`; `highlight` (a run's own schedule) bold on top."""
    return png.save_figure(draw_schedules(T=T, highlight=highlight), path)

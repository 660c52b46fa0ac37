"""Training curves of a run: pre-training loss, learning rate and throughput from `metrics.jsonl`, the kNN
evaluator's accuracy against the step (when it ran), the linear probe's loss per epoch from `probe.json`, and the
same for fine-tuning (`finetune/metrics.jsonl`,
`finetune.json`) when the run has one."""

from __future__ import annotations

import json

from etils import epath

from ldae_jax.errors import UserError
from ldae_jax.train import metrics
from ldae_jax.viz import png


def read_metrics(path) -> list[dict]:
    """The records of a `metrics.jsonl` in step order ([] when missing; a torn line is skipped)."""
    return sorted(metrics.read(path), key=lambda m: m["step"])


def _read_json(path):
    path = epath.Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def _steps_axis(ax, last_step: int) -> None:
    """Every panel against the step from 0 to the run's last logged step: one x axis along the row."""
    ax.set_xlim(0, max(last_step, 1) * 1.03)
    ax.set_xlabel("step", fontsize=8)
    ax.xaxis.set_major_locator(_integer_ticks())


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True, nbins=5)


def _plot_row(axes, lines: list[dict], what: str, note: str = "") -> None:
    """Loss (log scale when it spans more than 10x), learning rate and images/s against the step."""
    last = max(m["step"] for m in lines)
    for ax, key, label, log in ((axes[0], "loss", "loss", True), (axes[1], "lr", "learning rate", False),
                                (axes[2], "images_per_s", "images / s", False)):
        steps = [m["step"] for m in lines if key in m]  # an evaluation's line has no loss
        values = [m[key] for m in lines if key in m]
        if not values:
            ax.text(0.5, 0.5, f"no {key} logged", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3)
        ax.set_title(f"{what}: {label}" + (f"\n{note}" if note and key == "loss" else ""), fontsize=9)
        _steps_axis(ax, last)
        if log and min(values) > 0 and max(values) > 10 * min(values):
            ax.set_yscale("log")
        if key == "lr":  # '2.0e-04' on each tick: an offset text ('1e-4') above the axis would meet the title
            from matplotlib.ticker import FuncFormatter

            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.1e}" if v else "0"))
        if key == "images_per_s":
            ax.set_ylim(bottom=0)  # throughput from 0: a dip reads as its true share
        ax.grid(alpha=0.3)


def _plot_knn(ax, lines: list[dict], probe: dict | None) -> None:
    """The kNN evaluator's top-1 against the step, and the probe's kNN on all features at the end."""
    points = [(m["step"], m["knn_top1"]) for m in lines if "knn_top1" in m]
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, label="fixed subsets, in training")
    final = (probe or {}).get("results", {}).get("l-DAE", {}).get("knn_top1")
    if final is not None:
        ax.plot([probe["step"]], [final], marker="*", ms=9, ls="", label=f"all features, after: {final:.1f}%")
    ax.set_title("pre-training: kNN top-1 (%)", fontsize=9)
    _steps_axis(ax, max([m["step"] for m in lines] + ([probe["step"]] if final is not None else [])))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _plot_probe(ax, probe: dict) -> None:
    for name, result in probe["results"].items():
        losses = result.get("epoch_losses") or []
        if losses:
            ax.plot(range(1, len(losses) + 1), losses, label=f"{name}: {result['test_top1']:.1f}%")
    ax.set_title(f"linear probe (step {probe.get('step', '?')}): train loss", fontsize=9)
    ax.set_xlabel("epoch", fontsize=8)
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.legend(fontsize=7, title="test top-1", title_fontsize=7)
    ax.grid(alpha=0.3)


def write_curves_figure(workdir: str, path: str) -> str:
    plt = png.pyplot()

    root = epath.Path(workdir)
    pretrain = read_metrics(root / "metrics.jsonl")
    if not pretrain:
        raise UserError(f"{root / 'metrics.jsonl'} not found or empty: pre-train first (--mode=pretrain)")
    finetune = read_metrics(root / "finetune" / "metrics.jsonl")
    probe, finetune_result = _read_json(root / "probe.json"), _read_json(root / "finetune.json")
    knn = any("knn_top1" in m for m in pretrain)
    rows, cols = 1 + bool(finetune), 3 + knn + (probe is not None)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), squeeze=False)
    _plot_row(axes[0], pretrain, "pre-training")
    if knn:
        _plot_knn(axes[0, 3], pretrain, probe)
    if probe is not None:
        _plot_probe(axes[0, cols - 1], probe)
    if finetune:
        note = ""
        if finetune_result:
            note = "top-1: " + ", ".join(f"{k} {v:.1f}%" for k, v in finetune_result["top1"].items())
        _plot_row(axes[1], finetune, "fine-tuning", note)
        for ax in axes[1, 3:]:
            ax.axis("off")
    fig.tight_layout()
    return png.save_figure(fig, path)

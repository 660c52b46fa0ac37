"""Small ablations by name, for the Colab notebook (launch/colab/) and anyone scripting one: a named set of
ladder rows, run one after another with live progress, then the ladder report and its figure.

    from ldae_jax.ladder import ablations
    out = ablations.run("latent_dim", scale="small", seeds=[0], root="workdirs/latent_dim")
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from ldae_jax.errors import UserError
from ldae_jax.ladder import report as report_lib, rows as rows_lib, runs
from ldae_jax.viz import ladder_chart, latent_dim

# name -> (ladder rows, its figure: accuracy vs latent size, or Figure 6's bars for the rows)
ABLATIONS = {
    "latent_dim": ("t2.pca.*", "latent_dim"),  # Table 2's PCA column: accuracy peaks at a small d
    "pca_vs_pixel": ("t2.pca.d32,f5.pixel.*", "latent_dim"),  # Figure 5: pixels at four resolutions vs PCA
    "noise_levels": ("t3.step5,t3.single", "bars"),  # multi-level vs single-level noise
    "whitening": ("w.*", "bars"),  # docs/paper_notes.md 3.3: whitened vs unwhitened PCA latents
}
DATASETS = {"fashion_mnist": ("small", "tiny"), "cifar10": ("cifar",)}  # dataset -> the ladder scales on it


def scale_for(dataset: str, smallest: bool = False) -> str:
    """The ladder scale of an ablation on `dataset`: 'small' (Fashion-MNIST) or 'cifar'; 'tiny' for a smoke run."""
    if dataset not in DATASETS:
        raise UserError(f"dataset {dataset!r} is unknown; choose one of {', '.join(DATASETS)}")
    return DATASETS[dataset][-1] if smallest else DATASETS[dataset][0]


def prepare_cifar10(data_dir: str | None = None) -> None:
    """Downloads and prepares TFDS cifar10 (about 160 MB, a minute or two), where the network allows it."""
    builder = tfds.builder("cifar10", data_dir=data_dir)
    if not builder.is_prepared():
        builder.download_and_prepare()


def run(name: str, *, scale: str, seeds=(0,), root: str) -> dict:
    """Runs the ablation's rows (each resumed or skipped if already done), writes ROOT/ladder_SCALE.md and its
    figure; returns {'rows', 'results' ({row: {seed: {'linear', 'knn', ...}}}), 'report', 'figure'}."""
    if name not in ABLATIONS:
        raise UserError(f"ablation {name!r} is unknown; choose one of {', '.join(ABLATIONS)}")
    patterns, figure = ABLATIONS[name]
    rows = rows_lib.select(patterns)
    planned = runs.plan(rows, scale, [int(s) for s in seeds])
    runs.run_local(planned, root)
    results = runs.gather(planned, root)
    report = os.path.join(root, f"ladder_{scale}.md")
    command = f"ldae_jax.ladder.ablations.run({name!r}, scale={scale!r}, seeds={list(seeds)}, root={root!r})"
    report_lib.write(results, report, scale=scale, command=command)
    path = os.path.join(root, "figures", f"{name}.png")
    table = report_lib.table(results, scale)
    if figure == "latent_dim":
        drawn = latent_dim.plot_latent_dim(table, path, scale)
    else:  # Figure 6's bars, for just this ablation's rows, in their own order
        drawn = ladder_chart.bar_chart([dict(r, trajectory=i) for i, r in enumerate(table)], path, scale)
    return {"rows": rows, "results": results, "report": report, "figure": path if drawn else None}


def show(*paths: str) -> None:
    """Shows PNG files inline in a notebook (IPython), or prints their paths elsewhere."""
    if None in paths:
        print("a figure was not drawn: none of its rows has a result")
    paths = [path for path in paths if path is not None]
    try:
        from IPython.display import Image, display  # here: IPython is there in notebooks only
    except ImportError:
        for path in paths:
            print(f"figure: {path}")
        return
    for path in paths:
        display(Image(filename=path))

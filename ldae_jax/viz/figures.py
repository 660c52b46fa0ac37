"""The paper's figures drawn from our own runs: which figure needs what, why one cannot be drawn from a given
workdir, and drawing them into a folder (`python -m ldae_jax.viz`; importable from a notebook as `draw`)."""

from __future__ import annotations

import dataclasses
from typing import Callable

from etils import epath

from ldae_jax import diffusion, experiment
from ldae_jax.errors import UserError
from ldae_jax.tokenizers import registry
from ldae_jax.viz import curves, denoising, filters, ladder_chart, latent_dim, noise, schedules
from ldae_jax.viz.workdir import Workdir, inspect, require_tokenizer_file

_NEEDS_RUN = "needs a single run (a folder with config.json)"


@dataclasses.dataclass(frozen=True)
class Figure:
    name: str
    paper: str  # the paper's figure or table it corresponds to
    needs: str  # what the workdir must hold, in words
    missing: Callable[[Workdir], str | None]  # why it cannot be drawn from this workdir, or None
    draw: Callable[[Workdir, str], str]  # (workdir, png path) -> the path written


def _run_missing(w: Workdir, *files: str) -> str | None:
    if w.kind != "run":
        where = "" if w.kind == "none" else f"; {w.path} is a ladder root, point --workdir at ROW/seedN in it"
        return _NEEDS_RUN + where
    absent = [f for f in files if not w.has(f)]
    return f"{w.path} has no {', '.join(absent)}" if absent else None


def _schedules(w: Workdir, path: str) -> str:
    highlight = diffusion.schedule_from_config(w.config.noise) if w.kind == "run" else None
    return schedules.plot_schedules(path, highlight=highlight)


def _filters_missing(w: Workdir) -> str | None:
    if (why := _run_missing(w)) is not None:
        return why
    try:
        filters.check_has_basis(w.config)
    except UserError as e:
        return str(e)
    return _run_missing(w, filters.FILES[w.config.tokenizer.kind])


def _filters(w: Workdir, path: str) -> str:
    return filters.write_filters_figure(w.config, w.path, path)


def _noise_missing(w: Workdir) -> str | None:
    if (why := _run_missing(w)) is not None:
        return why
    name = registry.get(w.config.tokenizer.kind).file
    return None if name is None else _run_missing(w, name)


def _noise(w: Workdir, path: str) -> str:
    require_tokenizer_file(w.config, w.path)
    return noise.write_noise_figure(experiment.Experiment(w.config, w.path), path, seed=w.config.seed)


def _denoising(w: Workdir, path: str) -> str:
    require_tokenizer_file(w.config, w.path)
    return denoising.write_denoising_figure(experiment.Experiment(w.config, w.path), path=path)


def _ladder_missing(w: Workdir, what: str, wanted: Callable[[dict], bool]) -> str | None:
    if w.kind != "ladder":
        return "needs a ladder root (the --workdir of python -m ldae_jax.ladder, with its ladder_SCALE.json)"
    if not any(r["results"] for r in w.ladder.rows if wanted(r)):
        return f"no {what} row of {w.path} has a probe result yet"
    return None


def _latent_dim(w: Workdir, path: str) -> str:
    latent_dim.plot_latent_dim(w.ladder.rows, path, w.ladder.scale)
    return path


def _ladder(w: Workdir, path: str) -> str:
    ladder_chart.bar_chart(w.ladder.rows, path, w.ladder.scale)
    return path


def _curves(w: Workdir, path: str) -> str:
    return curves.write_curves_figure(w.path, path)


FIGURES = {f.name: f for f in (
    Figure("schedules", "Figure 3", "nothing (a run's config highlights its own schedule)", lambda w: None,
           _schedules),
    Figure("filters", "Figure 4", "a run with a patch PCA / AE / VAE tokenizer file", _filters_missing, _filters),
    Figure("noise", "Figure 7", "a run's tokenizer (and its dataset's test split)", _noise_missing, _noise),
    Figure("denoising", "Figure 8", "a run's checkpoint", lambda w: _run_missing(w, "checkpoints"), _denoising),
    Figure("latent_dim", "Table 2 plot, Figure 5", "a ladder root with results of the accuracy-vs-d sweep",
           lambda w: _ladder_missing(w, "accuracy-vs-d sweep", lambda r: r["sweep"]), _latent_dim),
    Figure("ladder", "Figure 6", "a ladder root with trajectory results",
           lambda w: _ladder_missing(w, "Figure 6 trajectory", lambda r: r["trajectory"] is not None), _ladder),
    Figure("curves", "no paper figure", "a run's metrics.jsonl (probe.json, finetune/ if present)",
           lambda w: _run_missing(w, "metrics.jsonl"), _curves),
)}


def select(names: str) -> list[str] | None:
    """'all' -> None (every figure that applies); else the listed names, checked."""
    if names.strip() == "all":
        return None
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in FIGURES]
    if unknown or not wanted:
        raise UserError(f"unknown figure(s) {unknown or names!r}; choose 'all' or from {', '.join(FIGURES)}")
    return wanted


def draw(workdir: str | None, names: str = "all", out_dir: str | None = None,
         log: Callable[[str], None] = print) -> dict:
    """Draws the figures into out_dir (default WORKDIR/figures/NAME.png); returns {'written': {name: path},
    'skipped': {name: reason}}. With 'all', figures that cannot be drawn are skipped (and logged); a figure asked
    for by name that cannot be drawn is a UserError."""
    w = inspect(workdir)
    wanted = select(names)
    if out_dir is None:
        if workdir is None:
            raise UserError("without --workdir, pass --out_dir for the figures")
        out_dir = str(epath.Path(workdir) / "figures")
    written, skipped = {}, {}
    for name in wanted or FIGURES:
        figure = FIGURES[name]
        why = figure.missing(w)
        if why is not None:
            if wanted is not None:
                raise UserError(f"figure {name!r} ({figure.paper}) cannot be drawn: {why}")
            skipped[name] = why
            log(f"skipped {name} ({figure.paper}): {why}")
            continue
        written[name] = figure.draw(w, str(epath.Path(out_dir) / f"{name}.png"))
        log(f"wrote {written[name]} ({figure.paper})")
    return {"written": written, "skipped": skipped}

"""The stages of a run and the named modes (tuples of stages): one registry behind the command line, notebooks and
the ladder.

A stage declares the check it adds to the one before compute (`preflight.check`), the function it runs on the
run's Experiment, and the file it writes; `result` reads a stage's result back from a workdir through that
declaration. Adding a stage is one entry here plus the module that does its work (and its test).

    from ldae_jax import modes
    out = modes.run(config, "workdirs/q", "all")   # what `python -m ldae_jax.main --mode=all` runs
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable

import jax
from etils import epath

from ldae_jax import config_lib, experiment, export, preflight
from ldae_jax.errors import Preempted, UserError
from ldae_jax.evaluate import fid_eval, finetune, knn, probe
from ldae_jax.runtime import lock, preemption, timings
from ldae_jax.tokenizers import registry
from ldae_jax.train import pretrain
from ldae_jax.viz import denoising, reconstruction, samples


@dataclasses.dataclass(frozen=True)
class Options:
    """Per-command settings that are not part of the config."""

    probe_file: str = "probe.json"  # the probe writes its result under this name (the ladder's probe-only rows)
    allow_config_change: bool = False  # resume a checkpoint written under another config (warns)
    take_over: bool = False  # take the workdir's lock from a run that holds it (one known to be dead)


def _no_check(config, local: bool = True) -> None:
    del config, local


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    run: Callable  # (Experiment, Options) -> its result (a dict, or the path of the figure it drew)
    output: Callable  # (config, Options) -> the file (or folder) in the workdir that holds its result
    check: Callable = _no_check  # (config, local) -> None: what only this stage needs, before any data is read
    needs_checkpoint: Callable = lambda config: False  # reads the pre-training checkpoint (refused early without)
    batch_field: str | None = None  # a batch size of its own, checked against the devices like train.batch_size


def _tokenizer(exp, options: Options) -> dict:
    del options
    tok = exp.tokenizer
    if jax.process_index() == 0:  # the figures of the basis read the run's config
        config_lib.save_config(exp.config, exp.workdir)
    return {"kind": exp.config.tokenizer.kind, "hash": tok.content_hash()}


def _pretrain(exp, options: Options) -> dict:
    out = pretrain.train(exp, allow_config_change=options.allow_config_change, monitor=knn.Monitor(exp))
    return {k: v for k, v in out.items() if k != "params"}


def _figure(exp, options: Options) -> str:
    """The run's figure: denoising for l-DAE (Figures 7-8), reconstruction for MAE."""
    del options
    name = "reconstruction" if exp.objective.kind == "mae" else "denoising"
    if jax.process_index() == 0:
        print(f"Drawing the {name} figure (the latest checkpoint on a few test images) ...", flush=True)
    if exp.objective.kind == "mae":
        return reconstruction.write_reconstruction_figure(exp)
    return denoising.write_denoising_figure(exp)


_CHECKPOINT = lambda config: True  # noqa: E731

STAGES = {s.name: s for s in (
    Stage("tokenizer", _tokenizer, lambda c, o: registry.get(c.tokenizer.kind).file or "(nothing: no file)"),
    Stage("pretrain", _pretrain, lambda c, o: "checkpoints/, metrics.jsonl, config.json"),
    Stage("probe", lambda exp, o: probe.run_probe(exp, o.probe_file), lambda c, o: o.probe_file, probe.check,
          needs_checkpoint=_CHECKPOINT),
    Stage("figure", _figure, lambda c, o: "reconstruction.png" if c.objective.kind == "mae" else "denoising.png",
          needs_checkpoint=_CHECKPOINT),
    Stage("samples", lambda exp, o: samples.write_samples_figure(exp), lambda c, o: "samples.png",
          needs_checkpoint=_CHECKPOINT),
    Stage("fid", lambda exp, o: fid_eval.run_fid(exp), lambda c, o: "fid.json", fid_eval.check_config,
          needs_checkpoint=_CHECKPOINT),
    Stage("finetune", lambda exp, o: finetune.finetune(exp), lambda c, o: "finetune.json", finetune.check_config,
          needs_checkpoint=lambda c: not c.finetune.init, batch_field="finetune.batch_size"),
    Stage("export", lambda exp, o: export.export_run(exp),
          lambda c, o: f"export/encoder_t{c.finetune.t}.safetensors", export.check, needs_checkpoint=_CHECKPOINT),
)}

MODES = {
    "all": ("tokenizer", "pretrain", "probe", "figure"),
    "tokenizer": ("tokenizer",),
    "pca": ("tokenizer",),  # the earlier name of 'tokenizer'
    "pretrain": ("tokenizer", "pretrain"),
    "pretrain_probe": ("tokenizer", "pretrain", "probe"),
    **{name: (name,) for name in ("probe", "figure", "samples", "fid", "finetune", "export")},
}


def stages_of(mode: str) -> list[Stage]:
    if mode not in MODES:
        raise UserError(f"mode={mode!r} is unknown; choose one of {', '.join(MODES)}")
    return [STAGES[name] for name in MODES[mode]]


def check(config, mode: str, *, devices: int | None = None, processes: int = 1, workdir: str | None = None,
          local: bool = True, options: Options = Options()) -> preflight.Plan:
    """The one check before compute, for the stages of `mode` (see preflight.check)."""
    return preflight.check(config, stages_of(mode), devices=devices, processes=processes, workdir=workdir,
                           local=local, options=options)


def result(stage: str, workdir: str, options: Options = Options()):
    """The result of a stage that writes JSON (probe, fid, finetune) as its file in `workdir` holds it, else None."""
    path = epath.Path(workdir) / STAGES[stage].output(None, options)
    return json.loads(path.read_text()) if path.exists() else None


def run(config, workdir: str, mode: str = "all", *, options: Options = Options(), checked: bool = False) -> dict:
    """Checks the config for the stages of `mode` (unless the caller just did: `checked`), builds the run's
    Experiment once, runs the stages in order (each resuming from what the workdir holds) and returns {stage
    name: its result, 'seconds': ...}; stops cleanly after a stage that was preempted (its state saved;
    rerunning the command resumes)."""
    stages = stages_of(mode)
    if not checked:
        check(config, mode, workdir=workdir, options=options)
    out, start, before = {}, time.perf_counter(), timings.startup_seconds()
    config_lib.prepare_workdir(workdir)  # every folder the run writes, before it takes the workdir's lock
    with (timings.record() as clock, preemption.PreemptionWatch(),
          lock.hold(workdir, f"--mode={mode}", take_over=options.take_over)):
        with timings.phase("set-up (dataset, mesh, model)"):
            exp = experiment.Experiment(config, workdir)
        try:
            for stage in stages:
                with timings.phase(stage.name):
                    out[stage.name] = stage.run(exp, options)
                if isinstance(out[stage.name], dict) and out[stage.name].get("preempted"):
                    out["preempted"] = True
                    return out
        except Preempted as stopped:  # a stage that saved what it could (or had nothing to save) and stopped
            if jax.process_index() == 0:
                print(preemption.line(str(stopped)), flush=True)
            out["preempted"] = True
            return out
    out["seconds"] = time.perf_counter() - start
    if jax.process_index() == 0:
        timings.write(clock, epath.Path(workdir) / "timings.json")
        print(clock.table({"start-up (Python, imports, JAX)": before} if before is not None else None))
        for name in ("figure", "samples"):
            if name in out:
                print(f"Figure: {out[name]}")
        print(f"Done ({mode}) in {out['seconds'] / 60:.1f} min; outputs in {workdir} (timings.json: where the "
              "time went)")
    return out

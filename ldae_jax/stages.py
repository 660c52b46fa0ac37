"""The stages of a run (tokenizer, pre-training, probe, figure) behind one call, for the CLI, notebooks and the
ladder runner; no flags here, so importing it defines none."""

from __future__ import annotations

import time

from ldae_jax.errors import Preempted

MODES = ("all", "tokenizer", "pca", "pretrain", "probe", "figure", "pretrain_probe", "samples", "fid", "finetune",
         "export")


def check(config, mode: str) -> None:
    """The mistakes that can be found without data or devices (fields, tokenizer, FID and fine-tuning settings);
    `run` calls it first, `main --dry_run` only it."""
    from configs import common
    from ldae_jax import config_lib
    from ldae_jax.evaluate import fid_eval
    from ldae_jax.tokenizers import tokenizer as tok_lib

    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is unknown; choose one of {MODES}")
    config_lib.check_fields(config, common.ldae_base())
    tok_lib.check_config(config)
    if mode == "fid":
        fid_eval.check_config(config)
    if mode == "finetune":
        from ldae_jax.train import finetune

        finetune.check_config(config)


def run(config, workdir: str, mode: str = "all", *, allow_config_change: bool = False,
        probe_file: str = "probe.json") -> dict:
    """Run the stages of `mode`; importable from a notebook. The probe result goes to `workdir/probe_file`."""
    import jax

    from ldae_jax import config_lib
    from ldae_jax.evaluate import fid_eval, probe
    from ldae_jax.train import pretrain
    from ldae_jax.viz import denoising, samples

    check(config, mode)
    out, start = {}, time.perf_counter()
    try:
        if mode in ("tokenizer", "pca"):
            pretrain.setup_run(config, workdir)
            if jax.process_index() == 0:  # the viz figures of the basis read the run's config
                config_lib.save_config(config, workdir)
        if mode in ("all", "pretrain", "pretrain_probe"):
            trained = pretrain.train_and_evaluate(config, workdir, allow_config_change=allow_config_change)
            out["pretrain"] = {k: v for k, v in trained.items() if k != "params"}
            if trained["preempted"]:
                return out
        if mode in ("all", "probe", "pretrain_probe"):
            out["probe"] = probe.run_probe(config, workdir, probe_file)
    except Preempted as stopped:  # tokenizer training or the paper-protocol probe, which saved their state
        print(f"Preempted: {stopped}", flush=True)
        out["preempted"] = True
        out.setdefault("pretrain", {})["preempted"] = True
        return out
    if mode in ("all", "figure"):
        out["figure"] = denoising.write_denoising_figure(config, workdir)
    if mode == "samples":
        out["figure"] = samples.write_samples_figure(config, workdir)
    if mode == "fid":
        out["fid"] = fid_eval.run_fid(config, workdir)
    if mode == "finetune":
        from ldae_jax.train import finetune

        out["finetune"] = finetune.finetune(config, workdir)
    if mode == "export":
        from ldae_jax import export

        out["export"] = export.export_run(config, workdir)
    out["seconds"] = time.perf_counter() - start
    if jax.process_index() == 0:
        if "figure" in out:
            print(f"Figure: {out['figure']}")
        print(f"Done ({mode}) in {out['seconds'] / 60:.1f} min; outputs in {workdir}")
    return out

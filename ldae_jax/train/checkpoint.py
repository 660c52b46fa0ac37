"""Orbax checkpoints of a pre-training run, with the run identity checked on resume.

Each checkpoint holds the train state (params, optimizer state, step) and a JSON record of what produced it:
the config fingerprint and the PCA basis hash. The data position is the step itself (the input pipeline
resumes at any step) and the step RNG is fold_in(seed, step), so nothing else is needed for an exact resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import jax
import orbax.checkpoint as ocp

from ldae_jax import config_lib, schema
from ldae_jax.errors import UserError


class CheckpointMismatchError(UserError):
    """The workdir holds a checkpoint of a different run."""


# Fields that change what a checkpoint means. Logging cadence, probe settings and the like may change freely.
IDENTITY_SECTIONS = ("data", "tokenizer", "objective", "noise", "model", "train", "seed")
NON_IDENTITY_FIELDS = {"train.log_every", "train.checkpoint_every", "train.keep_checkpoints", "train.skip_nonfinite",
                       "tokenizer.conv_vae.checkpoint_every", "model.attention"}  # attention: same params, same math


def config_fingerprint(config) -> dict:
    """The parts of the config a checkpoint depends on, flattened to {'section.field': value}."""
    flat = {}

    def walk(prefix, node):
        if hasattr(node, "items"):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = node if isinstance(node, (int, float, str, bool, type(None))) else repr(node)

    for section in IDENTITY_SECTIONS:
        walk(section, config[section])
    return {k: v for k, v in sorted(flat.items()) if k not in NON_IDENTITY_FIELDS}


def fingerprint_hash(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


class Checkpointer:
    """Async saves when asked (the loop decides when), keeping the last `keep`; restores into a sharded layout."""

    def __init__(self, directory: str, *, keep: int):
        self.manager = ocp.CheckpointManager(
            directory if "://" in directory else os.path.abspath(directory),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state, meta: dict) -> bool:
        return self.manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        )

    def restore_meta(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, step: int, abstract_state, shardings):
        """The state at `step`, each array placed by `shardings` (a pytree matching abstract_state)."""
        target = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings
        )
        out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        return out["state"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def run_meta(config, tokenizer) -> dict:
    """What a checkpoint records about the run that wrote it, checked before any resume."""
    return {"fingerprint": config_fingerprint(config), "pca_hash": tokenizer.content_hash()}


def check_same_run(saved: dict, current: dict, directory: str, *, warn_only: bool = False) -> None:
    """Refuse to resume a checkpoint written under a different config or PCA basis (or only warn).

    A field the checkpoint does not know, set to its default, is not a difference: it was added to the code
    after the checkpoint was written, and its default keeps the behaviour the checkpoint was trained with. A
    checkpoint written before fields were renamed (schema.RENAMED) is read under today's names.
    """
    diffs = []
    old_fp, new_fp = config_lib.upgrade(saved.get("fingerprint", {})), current["fingerprint"]
    defaults = config_fingerprint(schema.defaults())
    for key in sorted(set(old_fp) | set(new_fp)):
        added_later = key not in old_fp and key in defaults and new_fp.get(key) == defaults[key]
        if old_fp.get(key) != new_fp.get(key) and not added_later:
            diffs.append(f"{key}: checkpoint {old_fp.get(key)!r} vs config {new_fp.get(key)!r}")
    if saved.get("pca_hash") != current["pca_hash"]:
        diffs.append(f"pca basis hash: checkpoint {saved.get('pca_hash')} vs workdir {current['pca_hash']}")
    if not diffs:
        return
    summary = f"{'; '.join(diffs[:5])}{' ...' if len(diffs) > 5 else ''}"
    if warn_only:
        print(f"WARNING: resuming a checkpoint of a different run ({summary})", file=sys.stderr, flush=True)
        return
    raise CheckpointMismatchError(
        f"{directory} holds a checkpoint of a different run ({summary}). Use a new --workdir, delete the old "
        "checkpoints, or pass --allow_config_change to resume anyway."
    )


def restore_latest(ckpt: Checkpointer, abstract, shardings, meta: dict, workdir: str, *,
                   allow_config_change: bool = False):
    """The newest readable train state in `ckpt`, after checking it belongs to this run; None when there is none.

    A checkpoint that fails to load (a corrupted or truncated file) is skipped with a warning, falling back to
    the one before it.
    """
    steps = sorted(ckpt.all_steps(), reverse=True)
    for i, step in enumerate(steps):
        try:
            saved = ckpt.restore_meta(step)
            check_same_run(saved, meta, workdir, warn_only=allow_config_change)
            return ckpt.restore(step, abstract, shardings)
        except CheckpointMismatchError:
            raise
        except Exception as e:  # noqa: BLE001 - any read failure means this checkpoint is unusable
            older = f"falling back to step {steps[i + 1]}" if i + 1 < len(steps) else "no older checkpoint"
            message = (f"WARNING: checkpoint at step {step} in {workdir} cannot be read ({type(e).__name__}: {e}); "
                       f"{older}")
            print(message.splitlines()[0], file=sys.stderr, flush=True)
    if steps:
        raise UserError(f"no checkpoint in {workdir}/checkpoints can be read; delete the folder to start over")
    return None

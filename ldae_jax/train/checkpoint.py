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
import time

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from ldae_jax import config_lib, schema
from ldae_jax.errors import UserError, first_line
from ldae_jax.runtime import precision


class CheckpointMismatchError(UserError):
    """The workdir holds a checkpoint of a different run."""


# Fields that change what a checkpoint means. Logging cadence, probe settings and the like may change freely.
IDENTITY_SECTIONS = ("data", "tokenizer", "objective", "mae", "noise", "model", "train", "seed")
NON_IDENTITY_FIELDS = {"train.log_every", "train.checkpoint_every", "train.keep_checkpoints", "train.skip_nonfinite",
                       "tokenizer.conv_vae.checkpoint_every",
                       "model.attention",  # same params, same math
                       "data.in_memory_mb"}  # how the split is read, not which: only the order of its examples


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


class CheckpointSaveError(UserError):
    """A checkpoint could not be written (a full disk, a folder that cannot be written); the run stops."""


class Checkpointer:
    """Async saves when asked (the loop decides when), keeping the last `keep` (at least 1, the final one
    among them); restores into a sharded layout. A save that fails, in this call or in the background after the
    previous one, stops the run with one error line, and the checkpoints before it stay as they were."""

    def __init__(self, directory: str, *, keep: int):
        if keep < 1:
            raise UserError(f"train.keep_checkpoints={keep}: at least one checkpoint must be kept")
        self.directory = directory if "://" in directory else os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def _failed(self, step: int | None, e: Exception) -> CheckpointSaveError:
        reason = getattr(e, "strerror", None) or first_line(e) or type(e).__name__
        kept = ", ".join(map(str, sorted(self.all_steps()))) or "none"
        return CheckpointSaveError(f"cannot save the checkpoint{f' of step {step}' if step else ''} in "
                                   f"{self.directory}: {reason}; the run stopped, the checkpoints before it "
                                   f"(steps: {kept}) are intact. Free space or fix the folder, then rerun to resume")

    def _check(self, step: int | None) -> None:
        try:
            self.manager.check_for_errors()
        except Exception as e:  # noqa: BLE001 - the background save of the previous checkpoint failed
            raise self._failed(step, e) from None

    def save(self, step: int, state, meta: dict) -> bool:
        self._check(step)
        try:
            return self.manager.save(
                step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
            )
        except Exception as e:  # noqa: BLE001 - any write failure: a full disk, permissions, a lost bucket
            raise self._failed(step, e) from None

    def restore_meta(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def saved_shapes(self, step: int) -> dict[str, tuple]:
        """{'params.blocks.0.qkv.kernel': shape, ...} of the parameters saved at `step`, from its metadata."""
        tree = ocp.StandardCheckpointer().metadata(os.path.join(self.directory, str(step), "state"))
        tree = getattr(tree, "item_metadata", tree)
        shapes = {m.name: tuple(m.shape) for m in jax.tree.leaves(tree) if str(m.name).startswith("params.")}
        if not shapes:
            raise ValueError(f"the parameters' metadata of step {step} cannot be read")
        return shapes

    def restore(self, step: int, abstract_state, shardings):
        """The state at `step`, each array placed by `shardings` (a pytree matching abstract_state)."""
        target = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings
        )
        out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        return out["state"]

    def move_aside(self, step: int, reason: str) -> str:
        """A damaged checkpoint goes to `checkpoints_damaged/STEP-<time>` (kept for a look, out of the way), so
        the step is trained and saved again; returns where it went."""
        if jax.process_index() == 0:
            source = epath.Path(self.directory) / str(step)
            target = epath.Path(f"{self.directory}_damaged") / f"{step}-{time.strftime('%Y%m%dT%H%M%S')}"
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
            (target / "WHY.txt").write_text(reason + "\n")
        else:
            target = epath.Path(f"{self.directory}_damaged") / str(step)
        multihost_utils.sync_global_devices("checkpoint moved aside")
        self.manager.reload()
        return str(target)

    def wait(self) -> None:
        self.manager.wait_until_finished()
        self._check(None)

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.manager.close()


def run_meta(config, tokenizer) -> dict:
    """What a checkpoint records about the run that wrote it, checked before any resume."""
    return {"fingerprint": config_fingerprint(config), "pca_hash": tokenizer.content_hash()}


def _resolved(fingerprint: dict) -> dict:
    """model.dtype as computed here: 'auto' is the same run as the dtype it resolves to on this machine."""
    if "model.dtype" not in fingerprint:
        return fingerprint
    return {**fingerprint, "model.dtype": precision.resolve(fingerprint["model.dtype"])[0]}


def check_same_run(saved: dict, current: dict, directory: str, *, warn_only: bool = False) -> str:
    """Refuse to resume a checkpoint written under a different config or tokenizer (or only warn, and return
    what differs).

    A field the checkpoint does not know, set to its default, is not a difference: it was added to the code
    after the checkpoint was written, and its default keeps the behaviour the checkpoint was trained with. A
    checkpoint written before fields were renamed (schema.RENAMED) is read under today's names.
    """
    diffs = []
    old_fp, new_fp = (_resolved(config_lib.upgrade(saved.get("fingerprint", {}))),
                      _resolved(current["fingerprint"]))
    defaults = config_fingerprint(schema.defaults())
    for key in sorted(set(old_fp) | set(new_fp)):
        added_later = key not in old_fp and key in defaults and new_fp.get(key) == defaults[key]
        if old_fp.get(key) != new_fp.get(key) and not added_later:
            diffs.append(f"{key}: checkpoint {old_fp.get(key)!r} vs config {new_fp.get(key)!r}")
    if saved.get("pca_hash") != current["pca_hash"]:
        diffs.append(f"tokenizer hash: checkpoint {saved.get('pca_hash')} vs workdir {current['pca_hash']}")
    if not diffs:
        return ""
    summary = f"{'; '.join(diffs[:5])}{' ...' if len(diffs) > 5 else ''}"
    if warn_only:
        print(f"WARNING: resuming a checkpoint of a different run ({summary})", file=sys.stderr, flush=True)
        return summary
    raise CheckpointMismatchError(
        f"{directory} holds a checkpoint of a different run ({summary}). Use a new --workdir, delete the old "
        "checkpoints, or pass --allow_config_change to resume anyway."
    )


def _shape_differences(saved: dict, abstract) -> list[str]:
    """Parameters whose saved shape differs from the config's model (or that only one of them has)."""
    params = abstract["params"] if isinstance(abstract, dict) else abstract.params
    mine = {"params." + ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    return [f"{name}: checkpoint {saved.get(name)} vs config {mine.get(name)}"
            for name in sorted(set(saved) | set(mine)) if saved.get(name) != mine.get(name)]


def restore_latest(ckpt: Checkpointer, abstract, shardings, meta: dict, workdir: str, *,
                   allow_config_change: bool = False):
    """The newest readable train state in `ckpt`, after checking it belongs to this run; None when there is none.

    A checkpoint of another config is refused with the fields that differ (with `allow_config_change`, resumed
    with a warning, unless its model's shapes differ: that is refused with the parameters that differ). A
    checkpoint that fails to load otherwise is damaged: it is moved aside (`checkpoints_damaged/`) with a
    warning, the one before it is used, and its step is trained and saved again.
    """
    steps = sorted(ckpt.all_steps(), reverse=True)
    for i, step in enumerate(steps):
        try:
            saved = ckpt.restore_meta(step)
            diffs = check_same_run(saved, meta, workdir, warn_only=allow_config_change)
            shapes = _shape_differences(ckpt.saved_shapes(step), abstract)
        except CheckpointMismatchError:
            raise
        except Exception as e:  # noqa: BLE001 - its record or metadata cannot be read: damaged
            _damaged(ckpt, step, steps[i + 1:], workdir, e)
            continue
        if shapes:
            summary = f"{'; '.join(shapes[:3])}{' ...' if len(shapes) > 3 else ''}"
            fields = f" (the config fields that differ: {diffs})" if diffs else ""
            raise CheckpointMismatchError(
                f"{workdir} holds a checkpoint (step {step}) of another model: {summary}{fields}. A run cannot "
                "resume it with another shape; use a new --workdir for this config")
        try:
            return ckpt.restore(step, abstract, shardings)
        except Exception as e:  # noqa: BLE001 - any read failure of a matching checkpoint means damage
            _damaged(ckpt, step, steps[i + 1:], workdir, e)
    if steps:
        raise UserError(f"no checkpoint in {workdir}/checkpoints can be read (all moved to checkpoints_damaged/); "
                        "rerun to start over")
    return None


def _damaged(ckpt: Checkpointer, step: int, older: list[int], workdir: str, e: Exception) -> None:
    reason = f"{type(e).__name__}: {first_line(e)}"
    where = ckpt.move_aside(step, f"could not be read: {reason}")
    then = f"falling back to step {older[0]}" if older else "no older checkpoint: starting over"
    print(f"WARNING: checkpoint at step {step} in {workdir} cannot be read ({reason}); moved to {where}, {then}",
          file=sys.stderr, flush=True)

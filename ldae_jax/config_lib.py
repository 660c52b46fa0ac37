"""Config checks, the one place where epochs become steps, and the workdir's config.json.

Workdir paths go through etils.epath, so a `gs://` workdir (TPU pods) works like a local one.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import socket

import ml_collections
from etils import epath

from ldae_jax.errors import UserError

CHOICES = {
    "data.augment": ("center_crop", "random_resized_crop"),
    "noise.schedule": ("ddpm_linear_beta", "linear_gamma_sq", "sigma_linear", "single_level"),
    "model.dtype": ("float32", "bfloat16"),
}


class ConfigError(UserError):
    pass


def _flatten(node, prefix=""):
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            yield from _flatten(value, name + ".")
        else:
            yield name, value


def check_names(names, schema) -> None:
    """Every dotted name must be a field of `schema`; a typo gets the closest field as a hint."""
    known = dict(_flatten(schema))
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown config field {name!r}{hint}")


def check_fields(config, schema) -> None:
    """Every field of `config` must exist in `schema` (catches typos), and choice fields take known values."""
    fields = dict(_flatten(config))
    check_names(fields, schema)
    for name, value in fields.items():
        if name in CHOICES and value not in CHOICES[name]:
            raise ConfigError(f"{name}={value!r} is not one of {CHOICES[name]}")
    for name in ("train.batch_size", "noise.T", "pca.patch_size", "pca.d", "pca.num_patches"):
        if fields.get(name, 1) < 1:
            raise ConfigError(f"{name} must be positive")
    if config.data.image_size % config.pca.patch_size:
        raise ConfigError(
            f"data.image_size={config.data.image_size} is not divisible by pca.patch_size={config.pca.patch_size}"
        )


def steps(num_examples: int, batch_size: int, *, epochs: float = 0.0, total_steps: int = 0) -> int:
    """A duration in steps: `total_steps` when set, else ceil(epochs * examples / batch)."""
    if total_steps > 0:
        return total_steps
    return max(1, math.ceil(epochs * num_examples / batch_size))


def prepare_workdir(workdir: str) -> None:
    """Create the workdir and prove it is writable, before any long work starts."""
    try:
        path = epath.Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_test.{socket.gethostname()}.{os.getpid()}"  # hosts share the workdir: one file each
        probe.write_text("ok")
        probe.unlink()
    except Exception as e:  # noqa: BLE001 - local OSError or a cloud-storage error alike
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
        raise UserError(f"cannot write to workdir {workdir!r}: {reason}; choose another --workdir") from None


def save_config(config, workdir: str) -> None:
    (epath.Path(workdir) / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = epath.Path(workdir) / "config.json"
    if not path.exists():
        raise UserError(f"{path} not found: pass --config, or point --workdir at a run made by ldae_jax.main")
    return ml_collections.ConfigDict(json.loads(path.read_text()))

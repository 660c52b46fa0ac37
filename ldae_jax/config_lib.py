"""Configs as a user writes them: a `configs/*.py` file with its variant, `--config.x=y` overrides, the check of
every field against the schema (names, types, choices, ranges), the one place where epochs become steps, and
the workdir's `config.json`.

Workdir paths go through etils.epath, so a `gs://` workdir (TPU pods) works like a local one.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import math
import os
import socket
import traceback

import ml_collections
from etils import epath

from ldae_jax import schema
from ldae_jax.errors import UserError, first_line
from ldae_jax.runtime import atomic

_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


class ConfigError(UserError):
    pass


def flatten(node, prefix: str = "") -> dict:
    """{'section.field': value} of a nested ConfigDict or dict."""
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _parse_value(text: str, like, name: str):
    """`text` as a value of the type of `like`; a text that is not one (e.g. 'maybe' for a bool) is an error."""
    kind = type(like)
    if kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ConfigError(f"{name}={text!r}: expected a boolean (true/false, 1/0, yes/no)")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r}: expected {'an integer' if kind is int else 'a number'}") from None
    return text


def parse_arg(arg: str, **defaults) -> ml_collections.ConfigDict:
    """A config file's variant string: 'a=1,b=x,flag' -> ConfigDict(a=1, b='x', flag=True), each value of its
    default's type; keys must be among `defaults`."""
    out = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, has_value, value = item.partition("=")
        if key not in defaults:
            raise ConfigError(f"unknown config argument {key!r}; known: {', '.join(sorted(defaults))}")
        if not has_value and type(defaults[key]) is not bool:
            raise ConfigError(f"config argument {key!r} needs a value ({key}=...)")
        out[key] = True if not has_value else _parse_value(value, defaults[key], f"config argument {key}")
    return out


def _config_path(path: str) -> str:
    """A config file as given, else the same path inside the installed package (so `configs/quickstart.py`
    works from any directory, and from a wheel install)."""
    if os.path.isfile(path):
        return path
    parts = os.path.normpath(path).split(os.sep)
    if parts[0] == "configs":
        spec = importlib.util.find_spec("configs")
        if spec is not None and spec.submodule_search_locations:
            candidate = os.path.join(list(spec.submodule_search_locations)[0], *parts[1:])
            if os.path.isfile(candidate):
                return candidate
    raise ConfigError(f"config file {path!r} not found (from {os.getcwd()}); give a path to a configs/*.py file")


def _file_error(path: str, arg: str, e: Exception) -> ConfigError:
    """One line for an exception raised by a config file: where in the file, and what (old names named)."""
    where = path + (f":{arg}" if arg else "")
    message = str(e).strip().splitlines()[-1].strip() if str(e).strip() else type(e).__name__
    if isinstance(e, UserError):  # the variant string, refused by parse_arg: no line of the file is wrong
        return ConfigError(f"{where}: {message}")
    lines = [f.lineno for f in traceback.extract_tb(e.__traceback__)
             if os.path.abspath(f.filename) == os.path.abspath(path)]
    where += f" (line {lines[-1]})" if lines else ""
    if isinstance(e, ImportError) and "common" in message and "configs" in message:
        return ConfigError(f"{where}: configs/common.py is gone; start from ldae_jax.schema.defaults() and read "
                           "the variant with ldae_jax.config_lib.parse_arg")
    section = message.strip("'\"")
    renamed = [old for old in schema.RENAMED if old.startswith(section + ".")]
    if isinstance(e, (AttributeError, KeyError)) and renamed:
        pairs = ", ".join(f"{old} -> {schema.RENAMED[old][0]}" for old in renamed[:3])
        return ConfigError(f"{where}: config.{section} is gone, its fields were renamed ({pairs}, ...; all in "
                           "ldae_jax/schema.py RENAMED)")
    return ConfigError(f"{where}: {message}" if isinstance(e, ValueError) else f"{where}: {type(e).__name__}: {message}")


def load_file(spec: str) -> ml_collections.ConfigDict:
    """'configs/file.py[:variant]' -> the ConfigDict its get_config(variant) returns. A mistake in the file (a
    syntax error, a bad variant, a field of the wrong type, a name it does not define) is one ConfigError
    naming the file and line."""
    path, _, arg = spec.partition(".py:")
    path = path + ".py" if _ else path
    if not path.endswith(".py"):
        raise ConfigError(f"--config={spec!r}: expected a Python config file, configs/NAME.py[:variant]")
    path = _config_path(path)
    name = f"ldae_config_{abs(hash(os.path.abspath(path)))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"config file {path} has a syntax error at line {e.lineno}: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 - the user's file: its mistake is theirs to fix, named by line
        raise _file_error(path, "", e) from None
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} has no get_config(arg) function")
    try:
        config = module.get_config(arg) if arg or _ else module.get_config()
    except Exception as e:  # noqa: BLE001 - as above
        raise _file_error(path, arg, e) from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"config file {path}: get_config returned {type(config).__name__}, not a ConfigDict")
    return config


def _unknown(name: str, known) -> ConfigError:
    if name in schema.RENAMED:
        return ConfigError(f"config field {name!r} was renamed: use {' and '.join(schema.RENAMED[name])}")
    close = difflib.get_close_matches(name, known, n=1)
    return ConfigError(f"unknown config field {name!r}{f' (did you mean {close[0]}?)' if close else ''}")


def apply_overrides(config, overrides: list[str]) -> ml_collections.ConfigDict:
    """`['train.total_steps=100', ...]` (the text after --config.) set on a copy of `config`, each value parsed as
    its field's type."""
    config = ml_collections.ConfigDict(config.to_dict())
    known = flatten(schema.defaults())
    for item in overrides:
        name, has_value, text = item.partition("=")
        if name not in known:
            raise _unknown(name, known)
        if not has_value:
            raise ConfigError(f"--config.{name} needs a value (--config.{name}=...)")
        *sections, field = name.split(".")
        node = config
        for section in sections:
            node = node[section]
        node[field] = _parse_value(text, known[name], name)
    return config


def _interval(rule: str):
    """'[1, inf)' -> (low, high, low inclusive, high inclusive)."""
    low, high = (float(v) for v in rule[1:-1].split(","))
    return low, high, rule[0] == "[", rule[-1] == "]"


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(type(value), "a value")


def check_fields(config) -> None:
    """Every field of `config` is a schema field, of its type, among its choices and in its range."""
    known = flatten(schema.defaults())
    for name, value in flatten(config).items():
        if name not in known:
            raise _unknown(name, known)
        like = known[name]
        if type(like) is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = type(value) is type(like)
        if not ok:
            raise ConfigError(f"{name}={value!r} must be {_type_name(like)}")
        if name in schema.CHOICES and value not in schema.CHOICES[name]:
            raise ConfigError(f"{name}={value!r} is not one of {', '.join(schema.CHOICES[name])}")
        if name in schema.RANGES:
            low, high, low_in, high_in = _interval(schema.RANGES[name])
            inside = (value >= low if low_in else value > low) and (value <= high if high_in else value < high)
            if not (inside and math.isfinite(value)):
                raise ConfigError(f"{name}={value} is out of range: it must be in {schema.RANGES[name]}")


def steps(num_examples: int, batch_size: int, *, epochs: float = 0.0, total_steps: int = 0) -> int:
    """A duration in steps: `total_steps` when set, else ceil(epochs * examples / batch)."""
    if total_steps > 0:
        return total_steps
    return max(1, math.ceil(epochs * num_examples / batch_size))


def prepare_workdir(workdir: str, folders=("checkpoints",)) -> None:
    """Create the workdir and the folders a run writes in it, and prove each is writable, before any long work
    starts (a run must not find out at its first checkpoint)."""
    for where in (workdir, *(str(epath.Path(workdir) / f) for f in folders)):
        try:
            path = epath.Path(where)
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write_test.{socket.gethostname()}.{os.getpid()}"  # hosts share it: one file each
            probe.write_text("ok")
            probe.unlink()
        except Exception as e:  # noqa: BLE001 - local OSError or a cloud-storage error alike
            reason = getattr(e, "strerror", None) or first_line(e)
            raise UserError(f"cannot write to {where!r}: {reason}; fix it or choose another --workdir") from None


def save_config(config, workdir: str) -> None:
    """`workdir/config.json`, replaced atomically (a full disk leaves the previous one whole)."""
    atomic.write(epath.Path(workdir) / "config.json", config.to_json_best_effort(indent=2, sort_keys=True))


def upgrade(flat: dict) -> dict:
    """A flat {'section.field': value} written before fields were renamed (schema.RENAMED), under today's names."""
    out = {}
    for name, value in flat.items():
        for new in schema.RENAMED.get(name, (name,)):
            out[new] = value
    return out


def from_dict(nested: dict) -> ml_collections.ConfigDict:
    """A config from its JSON form (a workdir's config.json, old field names included): today's defaults with the
    stored values on top, so a field added since the run was made reads as its default."""
    config = schema.defaults()
    known = flatten(config)
    for name, value in upgrade(flatten(nested)).items():
        if name not in known:
            raise _unknown(name, known)
        *sections, field = name.split(".")
        node = config
        for section in sections:
            node = node[section]
        node[field] = float(value) if isinstance(known[name], float) and isinstance(value, int) else value
    return config


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = epath.Path(workdir) / "config.json"
    if not path.exists():
        raise UserError(f"{path} not found: pass --config, or point --workdir at a run made by ldae_jax.main")
    try:
        return from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e}); pass --config to run without it") from None

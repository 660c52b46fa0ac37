"""The evidence's record: every finished run's numbers as committed beside the report (`<report>_runs.json`), so a
fresh checkout (another machine, a lost workdir) resumes the evidence instead of redoing it. A recorded run counts
as finished only while the config that made it is still the planned one: each entry carries a hash of what its
pre-training and probe depend on, and of its fine-tuning recipe when it was fine-tuned."""

from __future__ import annotations

import hashlib
import json

from etils import epath

from ldae_jax import config_lib
from ldae_jax.errors import UserError
from ldae_jax.ladder import runs
from ldae_jax.train import checkpoint

# What a record entry carries besides its identity: the run's numbers and timings.
CARRIED = ("linear", "knn", "baselines", "finetune", "knn_curve", "knn_seconds", "train_seconds",
           "seconds_per_step", "wall_seconds")


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def _identity(pretrain_config, probe: dict, knn: dict) -> str:
    """Of what a probe result depends on: the pre-training (the checkpoint's fingerprint), the probe's settings
    with its block resolved (0 is the encoder's last block, as probe.json writes it) and kNN's (not its cadence)."""
    probe = {**probe, "block": probe["block"] or pretrain_config.model.encoder_depth}
    return _hash({"pretrain": checkpoint.config_fingerprint(pretrain_config), "probe": probe,
                  "knn": {k: v for k, v in knn.items() if k != "every_steps"}})


def config_hash(p: runs.PlannedRun) -> str:
    """Of the planned run's pre-training and the row's probe."""
    return _identity(p.run_config, p.config.probe.to_dict(), p.config.knn.to_dict())


def made_hashes(workdir: str, probe_file: str) -> tuple[str | None, str | None]:
    """The same hashes of what made a finished result: (of the workdir's config.json with the probe file's own
    protocol and kNN settings, of that config's fine-tuning recipe); (None, None) where they cannot be read."""
    try:
        made = config_lib.load_config(workdir)
        probed = json.loads((epath.Path(workdir) / probe_file).read_text())
        return _identity(made, probed["protocol"], probed["knn"]), _hash(made.finetune.to_dict())
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return None, None


def finetune_hash(p: runs.PlannedRun) -> str:
    return _hash(p.run_config.finetune.to_dict())


class Record:
    """The entries of a committed `<report>_runs.json`, looked up by planned run."""

    def __init__(self, entries: list[dict] = ()):
        self._by_run = {(e["run"], e["probe_file"]): e for e in entries if e.get("done") and e.get("config")}

    @classmethod
    def load(cls, path: str) -> "Record":
        """The record at `path`; an empty one where there is no file (a first run)."""
        path = epath.Path(path)
        if not path.exists():
            return cls()
        try:
            return cls(json.loads(path.read_text())["runs"])
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"--record={path}: not a report's runs file ({e}); pass --record='' to ignore it")

    def __len__(self) -> int:
        return len(self._by_run)

    def entry(self, p: runs.PlannedRun) -> dict | None:
        """The recorded probe result of `p`, None if none or made under another config."""
        e = self._by_run.get((p.run_key, p.probe_file))
        return e if e is not None and e["config"] == config_hash(p) else None

    def finished(self, p: runs.PlannedRun) -> bool:
        """Recorded with everything `p` asks for (its fine-tuning too, under the same recipe)."""
        e = self.entry(p)
        if e is None:
            return False
        return not p.finetune or (e.get("finetune") is not None and e.get("finetune_config") == finetune_hash(p))

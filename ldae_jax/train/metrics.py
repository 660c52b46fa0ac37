"""Where training numbers go: TensorBoard (clu), `metrics.jsonl`, and a progress line with speed and ETA.

Only process 0 writes; every process may call these.
"""

from __future__ import annotations

import json
import time

import jax
from clu import metric_writers, parameter_overview
from etils import epath

from ldae_jax.train import sharding


class MetricsLog:
    def __init__(self, workdir: str):
        self.is_writer = jax.process_index() == 0
        self.writer = metric_writers.create_default_writer(
            workdir, just_logging=not self.is_writer, asynchronous=False
        )
        # Rewritten whole at each write (cloud storage cannot append); a resumed run keeps the earlier lines.
        self.path = epath.Path(workdir) / "metrics.jsonl"
        self.lines = self.path.read_text().splitlines() if self.is_writer and self.path.exists() else []

    def write(self, step: int, scalars: dict) -> None:
        scalars = {k: float(v) for k, v in scalars.items()}
        self.writer.write_scalars(step, scalars)
        if self.is_writer:
            self.lines.append(json.dumps({"step": step, **scalars}))
            self.path.write_text("\n".join(self.lines) + "\n")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def describe_state(abstract_state, shardings, mesh, workdir: str) -> str:
    """A short summary (parameter count, bytes per device) for the console; the full table goes to a file."""
    table = parameter_overview.get_parameter_overview(abstract_state.params, include_stats=False)
    if jax.process_index() == 0:
        (epath.Path(workdir) / "parameters.txt").write_text(table + "\n")
    count = sum(int(x.size) for x in jax.tree.leaves(abstract_state.params))
    params = sharding.bytes_per_device(abstract_state.params, shardings.params)
    opt = sharding.bytes_per_device(abstract_state.opt_state, shardings.opt_state)
    return (
        f"Model: {count / 1e6:.2f}M parameters (table in parameters.txt); per device on mesh "
        f"{dict(mesh.shape)}: params {params / 2**20:.1f} MiB + optimizer state {opt / 2**20:.1f} MiB"
    )


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    """Steps/s, images/s and ETA measured between calls to `report` (the first interval includes compile)."""

    def __init__(self, total_steps: int, global_batch: int, start_step: int):
        self.total, self.batch = total_steps, global_batch
        self.last_step, self.last_time = start_step, time.perf_counter()

    def report(self, step: int) -> dict:
        now = time.perf_counter()
        steps_per_s = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_step, self.last_time = step, now
        return {
            "steps_per_s": steps_per_s,
            "images_per_s": steps_per_s * self.batch,
            "eta_s": (self.total - step) / steps_per_s if steps_per_s > 0 else float("inf"),
        }


def log_line(step: int, total: int, scalars: dict, speed: dict) -> str:
    return (
        f"step {step}/{total} ({100 * step / total:.0f}%)  loss {scalars['loss']:.4f}  "
        f"lr {scalars['lr']:.2e}  {speed['images_per_s']:.0f} img/s  ETA {format_duration(speed['eta_s'])}"
    )

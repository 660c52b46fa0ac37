"""Where training numbers go: TensorBoard (clu), `metrics.jsonl`, and a progress line with speed and ETA.

Only process 0 writes; every process may call these.
"""

from __future__ import annotations

import json
import time

import jax
from clu import metric_writers, parameter_overview
from etils import epath

from ldae_jax.runtime import atomic, timings
from ldae_jax.train import sharding


class MetricsLog:
    """`metrics.jsonl` (one JSON line per log interval) and TensorBoard; process 0 writes.

    The file is replaced whole at each write (a temporary file, then a rename: cloud storage cannot append, and a
    full disk then leaves the previous version, never half a line). A resumed run keeps the lines up to the step
    it resumes from and drops the rest, so no step is logged twice; a torn line left by another writer is
    dropped on opening.
    """

    def __init__(self, workdir: str, resume_step: int | None = None):
        self.is_writer = jax.process_index() == 0
        self.writer = metric_writers.create_default_writer(
            workdir, just_logging=not self.is_writer, asynchronous=False
        )
        self.path = epath.Path(workdir) / "metrics.jsonl"
        self.lines = []
        if self.is_writer:
            self.lines = [json.dumps(m) for m in read(self.path)
                          if resume_step is None or m.get("step", 0) <= resume_step]
            if self.path.exists():
                self._flush()

    def write(self, step: int, scalars: dict) -> None:
        scalars = {k: float(v) for k, v in scalars.items()}
        self.writer.write_scalars(step, scalars)
        if self.is_writer:
            self.lines.append(json.dumps({"step": step, **scalars}))
            self._flush()

    def write_hparams(self, hparams: dict) -> None:
        """The run's hyper-parameters, for TensorBoard's HPARAMS tab."""
        self.writer.write_hparams({k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                   for k, v in hparams.items()})

    def _flush(self) -> None:
        atomic.write(self.path, "\n".join(self.lines) + "\n" if self.lines else "")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def read(path) -> list[dict]:
    """The records of a metrics.jsonl; a line that is not a whole JSON record (a torn write) is skipped."""
    path = epath.Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


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


format_duration = timings.format_duration


class Progress:
    """Steps/s, images/s and ETA of training alone, measured between calls to `report`.

    One-off work stays out of them: the train step is compiled before the clock starts (pretrain._compile), the
    clock restarts once the first step has finished (`started`: its batch started the input pipeline, its call
    compiled the step where it was not compiled ahead, allocated buffers), and `exclude` takes other work (an
    evaluation) out of the current interval. A report at the first step itself has only the first step's rate.
    """

    def __init__(self, total_steps: int, global_batch: int, start_step: int, clock=time.perf_counter):
        self.total, self.batch, self.clock = total_steps, global_batch, clock
        self.last_step, self.last_time = start_step, clock()
        self.first_rate = None  # steps/s of the first step, one-off costs included

    def started(self, step: int) -> None:
        """The first step (up to `step`) has finished: the intervals are measured from now."""
        now = self.clock()
        self.first_rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_step, self.last_time = step, now

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` of other work (an evaluation) out of the current interval."""
        self.last_time += seconds

    def report(self, step: int) -> dict:
        now = self.clock()
        if step > self.last_step:
            steps_per_s = (step - self.last_step) / max(now - self.last_time, 1e-9)
        else:  # nothing since the first step
            steps_per_s = self.first_rate or 0.0
        self.last_step, self.last_time = step, now
        return {
            "steps_per_s": steps_per_s,
            "images_per_s": steps_per_s * self.batch,
            "eta_s": (self.total - step) / steps_per_s if steps_per_s > 0 else float("inf"),
        }


def log_line(step: int, total: int, scalars: dict, speed: dict) -> str:
    skipped = f"  skipped {int(scalars['skipped_steps'])} non-finite" if scalars.get("skipped_steps") else ""
    return (
        f"step {step}/{total} ({100 * step / total:.0f}%)  loss {scalars['loss']:.4f}  "
        f"lr {scalars['lr']:.2e}  {speed['images_per_s']:.0f} img/s  ETA {format_duration(speed['eta_s'])}{skipped}"
    )

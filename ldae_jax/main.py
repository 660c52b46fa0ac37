"""Entry point: fit the PCA basis, pre-train l-DAE, linear-probe it, draw the denoising figure.

    python -m ldae_jax.main --config=configs/quickstart.py --workdir=workdirs/quickstart [--mode=all]

Modes: all (the default: every stage, each resuming from what the workdir already holds), tokenizer (fit the
PCA or train the patch AE/VAE / conv VAE; also called pca), pretrain, probe, figure, pretrain_probe (no
figure), samples (a figure of generated images), fid (Table 1's FID: needs --config.fid.inception_weights).
Without --config, the probe and figure modes read the workdir's config.json.
"""

from __future__ import annotations

import os
import sys
import time

# TensorFlow (tf.data only) must not take accelerator memory; hide GPUs before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from ldae_jax import stages  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file (optionally :variant).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for the run's outputs; a rerun resumes from it.")
flags.DEFINE_enum("mode", "all", list(stages.MODES), "Which stage(s) to run ('pca' is another name for 'tokenizer').")
flags.DEFINE_string("probe_file", "probe.json", "File in the workdir that the probe result is written to.")
flags.DEFINE_bool("dry_run", False, "Check the command and the config (no data, devices or workdir), then stop.")
flags.DEFINE_bool("allow_config_change", False, "Resume a checkpoint written under a different config (warns).")
flags.DEFINE_bool("multihost", False, "Join a multi-host job auto-detected by JAX (TPU pods, SLURM).")
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0, for other multi-process jobs.")
flags.DEFINE_integer("num_processes", None, "Number of processes, with --coordinator_address.")
flags.DEFINE_integer("process_id", None, "This process's index, with --coordinator_address.")
flags.mark_flags_as_required(["workdir"])

run = stages.run  # main.run, the notebook entry point


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:  # keep the console to progress lines; --verbosity=0 shows library logs
        logging.set_verbosity(logging.WARNING)
    from ldae_jax import config_lib
    from ldae_jax.errors import UserError
    from ldae_jax.train import pretrain

    try:
        if FLAGS.dry_run:
            config = FLAGS.config if FLAGS.config is not None else config_lib.load_config(FLAGS.workdir)
            stages.check(config, FLAGS.mode)
            print(f"dry run: the command and config are valid; --mode={FLAGS.mode} would write to {FLAGS.workdir}")
            return
        from ldae_jax.train import distributed

        distributed.initialize(
            multihost=FLAGS.multihost, coordinator_address=FLAGS.coordinator_address,
            num_processes=FLAGS.num_processes, process_id=FLAGS.process_id,
        )
        import jax

        from ldae_jax import host_malloc

        if (note := host_malloc.hint(jax.default_backend())) and jax.process_index() == 0:
            print(note, file=sys.stderr)
        config = FLAGS.config if FLAGS.config is not None else config_lib.load_config(FLAGS.workdir)
        run(config, FLAGS.workdir, FLAGS.mode, allow_config_change=FLAGS.allow_config_change,
            probe_file=FLAGS.probe_file)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except pretrain.DivergenceError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)


def parse_flags(argv):
    """absl's parsing, with config mistakes (unknown --config.x field, bad variant) as one-line errors."""
    from configs import common
    from ldae_jax import config_lib

    try:
        overrides = [a[len("--config."):].split("=")[0] for a in argv if a.startswith("--config.")]
        config_lib.check_names(overrides, common.ldae_base())
        return FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        message = str(e).strip().splitlines()[-1].strip()
        print(f"error: bad command line: {message}. See --helpshort; config fields are listed in configs/common.py",
              file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)

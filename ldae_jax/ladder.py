"""The ladder runner: pre-train and probe a set of ladder rows, then write a report table and a Figure 6-style chart.

    python -m ldae_jax.ladder --rows='t3.*,t1.*' --scale=small --seeds=0,1 --workdir=workdirs/ladder
    python -m ldae_jax.ladder --rows='t2.pca.*' --scale=paper --launch=print --workdir=gs://bucket/ladder

Rows and their changes are in `configs/ladder/rows.py`. Locally (`--launch=local`) rows run one after another
in this process, each in `workdir/ROW/seedN`, resuming whatever an earlier invocation left; rows whose configs
are identical (e.g. t2.pca.d32 and t3.step0) share one run. `--launch=print` prints one command per run
instead, for a cluster scheduler; a later `--launch=report` gathers their probe results. Every row's config is
built and checked before any compute is spent.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("rows", "t3.*", "Comma-separated row names or patterns (see configs/ladder/rows.py).")
flags.DEFINE_enum("scale", "small", ["small", "paper", "tiny", "cifar"],
                  "small: Fashion-MNIST on CPU; cifar: the same on CIFAR-10 (TFDS, prepared); paper: ImageNet.")
flags.DEFINE_list("seeds", ["0"], "Seeds to run each row with.")
flags.DEFINE_string("workdir", "workdirs/ladder", "Root directory; each run goes to workdir/ROW/seedN.")
flags.DEFINE_enum("launch", "local", ["local", "print", "report"],
                  "local: run here; print: print one command per run; report: only gather finished runs.")
flags.DEFINE_string("vgg16", "", "VGG16 weights (.npz) for the perceptual loss of Table 1 rows 1-2.")
flags.DEFINE_string("inception", "", "Inception-v3 weights (.npz): also measure every run's FID (Table 1's column).")
flags.DEFINE_string("report", "", "Markdown report path (default workdir/ladder_SCALE.md; the PNG beside it).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from configs.ladder import rows as rows_lib
    from ldae_jax import ladder_runs
    from ldae_jax.errors import UserError
    from ldae_jax.evaluate import ladder_report

    try:
        try:
            rows = rows_lib.select(FLAGS.rows)
            seeds = [int(s) for s in FLAGS.seeds]
        except ValueError as e:
            raise UserError(str(e)) from None
        planned = ladder_runs.plan(rows, FLAGS.scale, seeds, FLAGS.vgg16, FLAGS.inception)
        if FLAGS.launch == "print":
            ladder_runs.print_commands(planned, FLAGS.workdir, FLAGS.scale, FLAGS.vgg16, FLAGS.inception)
            return
        if FLAGS.launch == "local":
            ladder_runs.run_local(planned, FLAGS.workdir)
        report = FLAGS.report or f"{FLAGS.workdir}/ladder_{FLAGS.scale}.md"
        command = "python -m ldae_jax.ladder " + " ".join(a for a in sys.argv[1:])
        ladder_report.write(ladder_runs.gather(planned, FLAGS.workdir), report, scale=FLAGS.scale, command=command,
                            fids=ladder_runs.gather_fid(planned, FLAGS.workdir))
        print(f"Report: {report}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)

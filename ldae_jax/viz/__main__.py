"""Draw the paper's figures from our own runs.

    python -m ldae_jax.viz --workdir=W [--figures=all|name,name] [--out_dir=D]

W is a single run (the --workdir of ldae_jax.main) or a ladder root (of ldae_jax.ladder); with --figures=all
every figure that W can give is drawn and the others are listed with the reason. Figures go to W/figures/.
The figures and what each needs are in `ldae_jax/viz/figures.py` (FIGURES).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A run's or a ladder's workdir; without it only 'schedules' can be drawn.")
flags.DEFINE_string("figures", "all", "'all', or comma-separated names: schedules, filters, noise, denoising, "
                    "latent_dim, ladder, curves.")
flags.DEFINE_string("out_dir", None, "Folder for the PNG files (default WORKDIR/figures).")
flags.DEFINE_bool("dry_run", False, "Check the figure names, then stop (the workdir is not read).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from ldae_jax.errors import UserError
    from ldae_jax.viz import figures

    try:
        if FLAGS.dry_run:
            names = figures.select(FLAGS.figures) or list(figures.FIGURES)
            print(f"dry run: would draw {', '.join(names)} from {FLAGS.workdir or 'no workdir'}")
            return
        figures.draw(FLAGS.workdir, FLAGS.figures, FLAGS.out_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)

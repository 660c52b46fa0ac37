"""Draw the paper's figures from our own runs.

    python -m ldae_jax.viz --workdir=W [--figures=all|name,name] [--out_dir=D]

W is a single run (the --workdir of ldae_jax.main) or a ladder root (of ldae_jax.ladder); with --figures=all
every figure that W can give is drawn and the others are listed with the reason. Figures go to W/figures/.
The figures and what each needs are in `ldae_jax/viz/figures.py` (FIGURES).
"""

from __future__ import annotations

from ldae_jax import cli
from ldae_jax.viz import figures


def parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m ldae_jax.viz", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", help="a run's or a ladder's workdir; without it only 'schedules' can be drawn")
    p.add_argument("--figures", default="all", help=f"'all', or comma-separated names: {', '.join(figures.FIGURES)}")
    p.add_argument("--out_dir", help="folder for the PNG files (default WORKDIR/figures)")
    p.add_argument("--dry_run", action="store_true", help="check the figure names, then stop (the workdir is not read)")
    p.add_argument("--verbosity", type=int, help="library log level (-1 warnings, 0 info; default: errors only)")
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    cli.set_verbosity(args.verbosity)
    if args.dry_run:
        names = figures.select(args.figures) or list(figures.FIGURES)
        print(f"dry run: would draw {', '.join(names)} from {args.workdir or 'no workdir'}")
        return
    figures.draw(args.workdir, args.figures, args.out_dir)


if __name__ == "__main__":
    cli.run(main)

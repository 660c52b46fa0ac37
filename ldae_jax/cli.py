"""What every command line of the package shares: one convention for mistakes. A user's mistake (a UserError, a
bad flag) is one line `error: ...` on stderr, with nothing before it, and exit code 2; an internal error keeps
its traceback. Library logging (JAX, orbax, TFDS through absl) shows errors only unless `--verbosity` asks for
more, so the console holds the command's own lines."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from absl import logging

from ldae_jax.errors import UserError

USER_ERROR = 2


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(USER_ERROR)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with flag mistakes as one `error:` line (no usage block before it) and exit code 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        fail(f"{message} (see --help)")


def set_verbosity(level: int | None) -> None:
    """absl's log level for the libraries: errors only unless `level` is given (-1 warnings, 0 info, 1 debug)."""
    logging.set_verbosity(logging.ERROR if level is None else level)


def run(main: Callable[[list[str]], object], argv: list[str] | None = None) -> None:
    """Calls main(argv); a UserError becomes the one-line error and exit code 2."""
    try:
        main(sys.argv[1:] if argv is None else argv)
    except UserError as e:
        fail(str(e))

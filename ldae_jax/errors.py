"""One base class for mistakes a user can fix; entry points print these as one line, without a traceback."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, for a one-line error ('' when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


class UserError(ValueError):
    """Bad input: a config value, a missing file, a workdir that cannot be used. The message says the fix."""


class DataError(UserError):
    """Bad data input (missing or corrupt files, bad arguments, unprepared datasets); the message says the fix."""


class DivergenceError(RuntimeError):
    """Training met a non-finite loss; the message says the step, what was kept and which field to change. The
    command line prints it as one error line with exit code 3."""


class Preempted(Exception):
    """A stage stopped on a preemption notice after saving its state; rerunning the same command resumes it."""

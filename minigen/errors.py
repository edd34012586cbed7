"""Errors that mean "the input is wrong", not "minigen is wrong".

The command line prints a :class:`UserError` as one line and exits with status 2; any other
exception is a bug and keeps its traceback (``minigen --debug`` shows tracebacks for user
errors too). Each concrete error also derives from the built-in exception that code catching
it before would expect (``ValueError``, ``FileNotFoundError``, ``FileExistsError``).
"""


class UserError(Exception):
    """Bad input from the user: an argument, a data file, a run directory, an output path."""


class InvalidInput(UserError, ValueError):
    """A value (option, data array, data file) that cannot be used; the message names it."""


class InvalidOption(UserError, TypeError):
    """An option name that the trainer does not know; the message lists the valid ones."""


class MissingFile(UserError, FileNotFoundError):
    """A file that is needed is not there: a checkpoint, a run directory's config.json."""


class RunExists(UserError, FileExistsError):
    """A fresh training run aimed at a directory that already holds a run."""


class RunMismatch(UserError, ValueError):
    """``resume`` with data or a run kind that are not the saved run's."""


class NonFiniteSamples(UserError, ValueError):
    """Samples with NaN or infinite values (diverged weights, or overflow in data units)."""


class IgnoredOptions(UserWarning):
    """Options given to a resume that the resumed run does not use (it keeps its own)."""


class RunBusy(UserError, BlockingIOError):
    """A run directory that another live process is writing (it holds the directory's lock)."""


class ResumeNotice(UserWarning):
    """What a resume cannot keep as asked, and what it does instead (e.g. a run extended
    beyond the steps its schedules were set for)."""

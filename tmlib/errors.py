"""Exceptions the command lines turn into one clear line on stderr.

:class:`UserError` and its subclasses mean *bad usage or bad input* (exit code 2).
Anything else escaping a command is a bug or a failed job (exit code 1).
"""


class TmError(Exception):
    """Base class of the library's own exceptions."""


class UserError(TmError):
    """Bad usage or bad input; the message says what, where and what to do."""


class ConfigError(UserError):
    """The configuration (environment variables or INI file) is invalid."""


class DatabaseError(UserError):
    """The database cannot be reached or is not usable."""


class NotFoundError(UserError):
    """A named user, experiment, plate, acquisition ... does not exist."""


class AlreadyExistsError(UserError):
    """An object with that name exists already."""


class InvalidInputError(UserError):
    """An argument or an input file is invalid."""

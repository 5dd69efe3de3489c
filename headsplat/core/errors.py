"""Typed errors. A :class:`HeadsplatError` is a user-facing problem: the CLI prints its message on one line."""


class HeadsplatError(Exception):
    """A problem the user can fix (bad file, missing asset); the message says what and where."""


class InputError(HeadsplatError):
    """An input file is missing, empty, corrupt or unsupported."""


class NoFaceError(HeadsplatError):
    """No face was found where one was needed."""


class MissingDependencyError(HeadsplatError):
    """An optional package or bundled model is not installed; the message says how to install it."""


class OutputError(HeadsplatError):
    """An output path cannot be written."""


class ShapeError(ValueError):
    """A tensor argument has the wrong shape or dtype (a programming error, not a user one)."""


class ArgumentError(HeadsplatError):
    """A function argument has a value the function does not take (an unknown choice, an option of another
    method); ``param`` names the parameter, so the command line can name its flag instead."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message

"""Typed errors. A :class:`HeadsplatError` is a user-facing problem: the CLI prints its message on one line."""


class HeadsplatError(Exception):
    """A problem the user can fix (bad file, missing asset); the message says what and where."""


class ArgumentError(HeadsplatError, ValueError):
    """A function argument has a value the function does not take (an unknown choice, an option of another
    method); also a ValueError, which the checks it replaced raised.

    Attributes:
        param: the Python parameter's name (``max_frames``), so the command line can name its flag instead
            (``--max-frames``).
        message: what is wrong with the value; ``str()`` is ``"param: message"``, one line.
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message

    def __reduce__(self):  # pickled (batch workers) from both fields, not from the one formatted message
        return type(self), (self.param, self.message)


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


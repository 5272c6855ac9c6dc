"""The errors a user can act on, and how the commands report them.

Each names what was wrong (the key, the file, the step) and what to do. The commands
(``zoo-train``, ``zoo-eval``, ``zoo-predict``) end on one of them with that one line and a
non-zero exit status, never with a traceback from inside a library: :func:`user_errors`.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager


class ConfigError(ValueError):
    """A config value the zoo refuses before any work starts (the message names the key)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, damaged, foreign, or asking to run code."""


class NonFiniteLossError(RuntimeError):
    """Training met a NaN or infinite loss and stopped before it reached the weights."""

    def __init__(self, message: str, step: int | None = None, epoch: int | None = None,
                 checkpoint: str | None = None):
        super().__init__(message)
        self.step, self.epoch, self.checkpoint = step, epoch, checkpoint


def _user_error_types() -> tuple[type[BaseException], ...]:
    from datamodules import DatasetNotFoundError
    from zoo.weights import WeightsError

    types: list[type[BaseException]] = [ConfigError, CheckpointError, WeightsError, DatasetNotFoundError]
    try:  # the data files' own faults (truncated, corrupt, hostile)
        from datamodules import DataFileError

        types.append(DataFileError)
    except ImportError:
        pass
    return tuple(types)


def user_error_cause(err: BaseException) -> BaseException | None:
    """The user error behind ``err``: itself, or the cause Hydra's ``instantiate`` wrapped in an
    ``InstantiationException`` (a model builder refusing an argument ...); None if there is none."""
    types = (*_user_error_types(), NonFiniteLossError)
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, types):
            return err
        err, seen = err.__cause__, seen + 1
    return None


@contextmanager
def unwrapped_user_errors():
    """Re-raise a user error that Hydra's ``instantiate`` wrapped, as itself."""
    from hydra.errors import InstantiationException

    try:
        yield
    except InstantiationException as err:
        cause = user_error_cause(err)
        if cause is None:
            raise
        raise cause from None


@contextmanager
def user_errors(prog: str):
    """Around a command's work: a fault the user can fix ends the command with one line saying
    what to do (exit status 2); a run stopped by a non-finite loss, likewise (exit status 1)."""
    try:
        with unwrapped_user_errors():
            yield
    except NonFiniteLossError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except _user_error_types() as err:
        print(f"{prog}: {err}", file=sys.stderr)
        raise SystemExit(2) from None

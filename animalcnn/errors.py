"""Errors a user can fix: the CLI prints them as one line, without a traceback; and a
run that ended without completing."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from animalcnn.run_folder import RunFolder


# The lines of an error message that do not say what went wrong: TensorFlow's messages
# open with "Graph execution error:" and the stack of the failing op.
NOISE = ("Graph execution error:", "Detected at node", "File ")


def gist(exc: BaseException) -> str:
    """An exception in one line, as our errors quote a library's: its kind and the first
    line that says what went wrong, cut to 200 characters."""
    lines = (line.strip() for line in str(exc).splitlines())
    line = next((line for line in lines if line and not line.startswith(NOISE)), "")
    return f"{type(exc).__name__}: {line[:200]}" if line else type(exc).__name__


class UserError(Exception):
    """Bad input (config, data, run folder); `exit_code` is what the CLI exits with."""

    exit_code = 2


class ConfigError(UserError):
    """A config file or override that does not validate."""


class DataError(UserError):
    """A dataset folder or image that cannot be used."""


class RunFolderError(UserError):
    """A path that is not a usable run folder."""


class TrainingFailed(Exception):
    """The run ended without completing (interrupted, diverged, failed); its folder says
    why, and `train --resume` continues it where it kept a resume state."""

    def __init__(self, run: RunFolder, status: str, reason: str) -> None:
        super().__init__(f"{run.path}: {status}: {reason}")
        self.run, self.status, self.reason = run, status, reason

"""Errors a user can fix: the CLI prints them as one line, without a traceback; and a
run that ended without completing."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from animalcnn.run_folder import RunFolder


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

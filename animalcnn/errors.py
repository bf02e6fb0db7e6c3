"""Errors a user can fix: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """Bad input (config, data, run folder); `exit_code` is what the CLI exits with."""

    exit_code = 2


class ConfigError(UserError):
    """A config file or override that does not validate."""


class DataError(UserError):
    """A dataset folder or image that cannot be used."""


class RunFolderError(UserError):
    """A path that is not a usable run folder."""

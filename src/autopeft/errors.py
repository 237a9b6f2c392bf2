"""The error types the command line turns into a one-line message and exit code 2."""


class UserError(ValueError):
    """Bad input from the user (a model, a configuration, a file, an option); the message says which."""


class ConfigError(UserError):
    """A configuration that is malformed or outside the space; the message names the problem."""

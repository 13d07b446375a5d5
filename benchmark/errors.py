"""The one exception type that means "the user asked for something we cannot do".

The CLI turns it into a single line on stderr and exit code 2, so every module raises
it for bad input instead of letting a traceback reach the user.
"""


class UserError(Exception):
    """Bad input: an unknown name, an impossible setting, missing or corrupt data."""

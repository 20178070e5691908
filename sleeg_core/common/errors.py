"""One exception type for every user-facing failure: the CLI prints its message, no traceback."""


class SleegError(Exception):
    """A clear, user-facing error (bad file, bad input, bad configuration)."""


class MissingPackageError(SleegError, ImportError):
    """An optional package is not installed. A SleegError, so the CLI prints its one line; an
    ImportError (`name`: the package), so callers that probe for a feature see it as missing."""

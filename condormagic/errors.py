"""Exceptions that carry one sentence a user can act on."""


class CondorMagicError(ValueError):
    """A problem with what the user asked for, stated in one sentence.

    The magics show it as a one-line ``UsageError``; the CLI prints it without a
    traceback. Raised before anything is submitted or written.
    """


class SourceError(CondorMagicError):
    """A raster source is missing, unreadable, or does not fit the grid."""


class RunNotFound(CondorMagicError, LookupError):
    """No run matches a name or id."""

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


class SchedulerError(CondorMagicError):
    """The HTCondor pool could not be used: no configuration, no schedd, or a refusal."""


class NoScheddError(SchedulerError):
    """No HTCondor configuration was found, or no schedd could be located or reached."""


class SubmitRefused(SchedulerError):
    """The schedd refused a submission; the message carries its own words."""


class AuthenticationError(SchedulerError):
    """The schedd did not accept who the user is."""

"""Exceptions a user can act on.

Every failure the pipeline expects (bad input, failed expectations, a failed
quality gate, an unusable model bundle) is one of these, so the CLI can print
a short message and exit non-zero instead of a traceback.
"""


class SomsegError(Exception):
    """Base class of every error whose message is meant for the user."""

    exit_code: int = 1


class ConfigError(SomsegError):
    """The configuration is invalid or cannot be read."""

    exit_code = 2


class DataError(SomsegError):
    """An input table cannot be used: unreadable, a column missing, bad values."""

    exit_code = 3


class DataQualityError(SomsegError):
    """One or more data-quality expectations failed."""

    exit_code = 4


class QualityGateError(SomsegError):
    """The trained map is worse than the configured thresholds allow."""

    exit_code = 5


class ModelBundleError(SomsegError):
    """A saved model bundle is missing, corrupted or incompatible."""

    exit_code = 6


class DriftError(SomsegError):
    """New data has drifted from the training data beyond the configured limits."""

    exit_code = 7


class ServerUnavailableError(SomsegError):
    """The Prefect server a command must talk to does not answer."""

    exit_code = 3

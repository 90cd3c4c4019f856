"""Typed errors. Every message says what was expected, what was found and what to do."""


class PerVFIError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(PerVFIError, ValueError):
    """A tensor, file or option given by the caller is not usable as it is."""


class WeightsError(PerVFIError):
    """A checkpoint cannot be found, downloaded, verified or loaded."""


class ArchitectureMismatchError(WeightsError, ValueError):
    """A checkpoint belongs to a different architecture than the one asked for."""


class UnsafeCheckpointError(WeightsError):
    """A pickled checkpoint tried to do more than store tensors (refused, never executed)."""


class DownloadError(WeightsError):
    """A download failed, was truncated, or did not match its published hash."""

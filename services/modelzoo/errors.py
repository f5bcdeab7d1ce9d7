"""Errors a user of the model zoo can hit, each with a one-line message meant for a terminal."""

from __future__ import annotations

from deploylab.services.common.errors import UserError


class ZooError(UserError):
    """Base of the zoo's errors: the CLI prints one as a line and exits non-zero."""


class WeightsError(ZooError):
    """A weights file that cannot be read or does not fit the model's architecture."""


class ParityError(ZooError):
    """ONNX Runtime and torch disagree beyond the tolerance: the export is wrong, not noisy."""


class RepositoryError(ZooError):
    """The model repository cannot be written (permissions, not a directory, …)."""


class ReparameterizationError(ZooError):
    """Re-parameterization left a block that is not a single 3x3 convolution."""

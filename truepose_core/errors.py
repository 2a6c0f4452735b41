"""Errors that a user can act on.

Every message names the input that was wrong, what was found and what was expected, so the
ComfyUI node error and the CLI's one-line message are enough to fix the problem.
"""

from __future__ import annotations


class TruePoseError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(TruePoseError, ValueError):
    """A configuration value or key is invalid."""


class CheckpointError(TruePoseError):
    """A checkpoint file is missing, corrupt, or of the wrong model."""


class PoseError(TruePoseError, ValueError):
    """Keypoints cannot be parsed or are unusable."""


class ParsingError(TruePoseError, ValueError):
    """A human-parsing map is unusable (wrong size, unknown labels, no person)."""


class ImageError(TruePoseError, ValueError):
    """An input image has an unusable shape, size or value range."""


class BatchError(TruePoseError, ValueError):
    """Batch sizes of sources, poses and parsing maps do not fit together."""


class DataError(TruePoseError):
    """A data set folder or annotation file is missing or malformed."""


class DependencyError(TruePoseError, ImportError):
    """An optional dependency or weight file needed for a feature is not available."""

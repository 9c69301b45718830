"""Domain errors. Library code raises these; only the CLI turns them into exit codes.

Each message says what was wrong, where, what was expected and what to do, on one line.
"""

from __future__ import annotations


class MobqError(Exception):
    """Base of every error a user can cause or fix."""

    exit_code = 2


class InputError(MobqError):
    """A path, name, flag or file the user gave is wrong."""


class ModelNotFound(InputError):
    """A recipe, hub id or local directory could not be found."""


class UnsupportedModel(InputError):
    """The checkpoint is not a causal LM of a family mobq supports."""


class CheckpointError(InputError):
    """A checkpoint file is missing, corrupt, or in a format mobq refuses to load."""


class OutputExists(InputError):
    """An output would overwrite something the user has, and --force was not given."""


class ResourceError(MobqError):
    """Not enough disk or memory to run a stage."""


class VerificationFailed(MobqError):
    """The exported program disagrees with the eager model it came from."""

    exit_code = 3


class StageError(MobqError):
    """A pipeline stage failed for a reason that is not the user's input."""

    exit_code = 4


class DeviceError(MobqError):
    """adb is missing, no phone is connected, or adb failed."""

    exit_code = 5

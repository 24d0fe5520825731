"""Typed errors: each names the problem so a job can exit with a one-line reason."""


class ShopperLakeError(Exception):
    """Base class for every error a job reports as a one-line message and a non-zero exit."""

    exit_code = 2


class ConfigError(ShopperLakeError):
    """Unknown key, missing required key, wrong type or unreadable config/mapping file."""


class InputError(ShopperLakeError):
    """Missing or unreadable input path, unknown source, invalid argument."""


class SchemaError(ShopperLakeError):
    """A DataFrame or table does not have the columns/types a step needs."""


class LakeError(ShopperLakeError):
    """The lake cannot be read or written (unwritable root, missing table, failed commit)."""

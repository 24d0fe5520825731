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


def root_cause(exc: BaseException) -> str:
    """The most telling line of a (possibly Java) exception: its deepest ``Caused by``."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    causes = [ln for ln in lines if ln.startswith("Caused by:")]
    line = causes[-1].removeprefix("Caused by:").strip() if causes else (lines[0] if lines else "")
    return line or type(exc).__name__

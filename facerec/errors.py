"""One base exception for everything facerec refuses, so the CLI can turn it into one clear line."""

from __future__ import annotations


class FacerecError(Exception):
    """Base class: a domain error with a message that names the thing, the expectation and the finding."""


class ConfigError(FacerecError, ValueError):
    """An option or config value is not one of the allowed ones."""


class SourceError(FacerecError):
    """A data source cannot be opened or read (missing folder, no network for a hub id, bad columns)."""


class SchemaMismatchError(FacerecError):
    """A table or array was written with another layout version or another schema than this code reads."""


class StoreError(FacerecError):
    """A store is missing a stage's output, is half written, or cannot be written."""


class DamagedStoreError(StoreError):
    """Stored bytes differ from what the stage recorded writing (missing, truncated, corrupt).

    ``where`` names the damaged thing (stage folder, shard, array, chunk, rows); ``repair`` is the
    command that recomputes it.
    """

    def __init__(self, message: str, *, where: dict | None = None, repair: str | None = None) -> None:
        super().__init__(message)
        self.where = dict(where or {})
        self.repair = repair


class StageNotReadyError(StoreError):
    """A stage was asked to run before the stage it reads has finished."""


class TrainingError(FacerecError):
    """Training cannot go on (NaN loss, incompatible checkpoint)."""


def choice_error(field: str, value: object, allowed: list[str] | tuple[str, ...]) -> ConfigError:
    """Build the standard 'unknown choice' error, listing what is allowed."""
    return ConfigError(f"unknown {field} {value!r}; expected one of: {', '.join(map(str, allowed))}")

"""Typed errors. Every message says what went wrong and what to do next.

The CLI turns any ``ZooError`` into a one-line message and exit code 1 (2 for usage errors),
never a traceback.
"""

from __future__ import annotations

import warnings


class ZooError(Exception):
    """Base class for every error zoo raises on purpose."""

    exit_code = 1


class UsageError(ZooError):
    """The caller asked for something malformed (bad option value, bad id syntax)."""

    exit_code = 2


class InvalidModelId(UsageError):
    pass


class UnknownModel(ZooError):
    def __init__(self, model_id: str, suggestions: list[str] | None = None):
        self.model_id = model_id
        self.suggestions = suggestions or []
        hint = (
            f" Did you mean: {', '.join(self.suggestions)}?"
            if self.suggestions
            else " Run `zoo search` to list registered models."
        )
        super().__init__(f"Unknown model id {model_id!r}.{hint}")


class ManifestError(ZooError):
    """A manifest file is malformed; the message names the file, entry and field."""

    def __init__(self, path: str, message: str, entry: str | int | None = None, field: str | None = None):
        self.path, self.entry, self.field = path, entry, field
        where = path
        if entry is not None:
            where += f", entry {entry!r}" if isinstance(entry, str) else f", entry #{entry}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"Invalid manifest {where}: {message}")


class SourceError(ZooError):
    """A source (folder, hub, timm) could not be read."""


class HubError(SourceError):
    pass


class IdCollision(ZooError):
    pass


class DatabaseError(ZooError):
    """A database could not be read or written; built by ``zoo.connection.translate_sqlite_error`` only."""


class DatabaseLocked(DatabaseError):
    pass


class DatabaseReadOnly(DatabaseError):
    pass


class DatabaseFull(DatabaseError):
    pass


class DatabaseCorrupt(DatabaseError):
    pass


class SchemaTooNew(DatabaseError):
    pass


class WeightsUnavailable(ZooError):
    pass


class UntrustedModel(ZooError):
    """A model's files would run code of their own when loaded (custom code, a class named in modules.json);
    zoo never runs it."""


class ZooWarning(UserWarning):
    """Something the user should know that does not stop the command (a cache that could not be written,
    an unrecognised license). The CLI prints each as one ``warning:`` line; API callers get a Python warning."""


def warn(message: str) -> None:
    """Emit a :class:`ZooWarning` (shown once per distinct message by Python's default filter)."""
    warnings.warn(message, ZooWarning, stacklevel=2)

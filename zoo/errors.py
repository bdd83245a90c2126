"""Typed errors. Every message says what went wrong and what to do next.

The CLI turns any ``ZooError`` into a one-line message and exit code 1 (2 for usage errors),
never a traceback.
"""

from __future__ import annotations


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
    pass


class DatabaseLocked(DatabaseError):
    pass


class SchemaTooNew(DatabaseError):
    pass


class WeightsUnavailable(ZooError):
    pass

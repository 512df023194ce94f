"""``Change``: one commit as the master stored it, read-only, with Buildbot's attribute names.

Schedulers hand ``Change`` objects to ``ChangeFilter`` functions and to ``fileIsImportant``,
so a function written for Buildbot (``lambda change: change.branch == 'main'``) works here.
"""

from dataclasses import dataclass, field, fields
from typing import Any

# The change fields that describe *what* to build; schedulers copy them into build properties.
SOURCE_FIELDS = ("branch", "revision", "repository", "project", "codebase")


@dataclass(frozen=True)
class Change:
    """A stored change (a row of ``db.changes``)."""

    changeid: int | None
    author: str
    comments: str = ""
    files: tuple[str, ...] = ()
    branch: str | None = None
    revision: str | None = None
    repository: str = ""
    project: str = ""
    codebase: str = ""
    category: str | None = None
    committer: str | None = None
    when_timestamp: float | None = None
    created_at: float | None = None
    properties: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, row: dict) -> "Change":
        """A ``Change`` from a ``db.changes.get`` row (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        values["files"] = tuple(row.get("files") or ())
        values["properties"] = dict(row.get("properties") or {})
        return cls(**values)

    @property
    def number(self) -> int | None:
        """Buildbot's name for the change id."""
        return self.changeid

    @property
    def who(self) -> str:
        """Buildbot's old name for the author."""
        return self.author

    def source_properties(self) -> dict[str, Any]:
        """The build properties naming this change's source: branch, revision, repository..."""
        return {name: getattr(self, name) for name in SOURCE_FIELDS}

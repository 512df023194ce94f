"""The ``roles`` table: roles made through the Auth API (master/auth/roles.py keeps them in
memory and writes here; master.cfg's roles are never stored)."""

import json
from typing import Any

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent
from buildfarm.master.db.model import roles


class RoleExists(Exception):
    """``add`` of a role id that is taken."""


class RolesComponent(DBComponent):
    """Rows of ``roles``."""

    async def get_all(self) -> list[dict[str, Any]]:
        """Every stored role, sorted by id."""
        return await self._fetch_all(sa.select(roles).order_by(roles.c.role_id), _row)

    async def get(self, role_id: str) -> dict[str, Any] | None:
        return await self._fetch_one(sa.select(roles).where(roles.c.role_id == role_id), _row)

    async def add(self, role_id: str, description: str, scopes: list[str], now: float) -> None:
        """Store a new role; ``RoleExists`` when the id is taken (by another master too)."""
        statement = sa.insert(roles).values(role_id=role_id, description=description,
                                            scopes=_scopes_text(scopes), created=now, last_modified=now)

        def thd(conn: sa.Connection) -> None:
            try:
                with conn.begin_nested():
                    conn.execute(statement)
            except sa.exc.IntegrityError:
                raise RoleExists(role_id) from None

        await self._run(thd)

    async def update(self, role_id: str, description: str, scopes: list[str], now: float) -> bool:
        """Replace a role's description and scopes; False when there is no such role."""
        return bool(await self._execute(
            sa.update(roles).where(roles.c.role_id == role_id)
            .values(description=description, scopes=_scopes_text(scopes), last_modified=now)))

    async def delete(self, role_id: str) -> bool:
        """Delete a role; False when there was none."""
        return bool(await self._execute(sa.delete(roles).where(roles.c.role_id == role_id)))


def _scopes_text(scopes: list[str]) -> str:
    return json.dumps(list(scopes))


def _row(row: sa.Row) -> dict[str, Any]:
    return {"roleId": row.role_id, "description": row.description, "scopes": json.loads(row.scopes),
            "created": row.created, "lastModified": row.last_modified}

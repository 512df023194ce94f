"""The ``clients`` table: the clients made through the Auth API (master/auth/clients.py holds
what they mean; this module only stores them).  ``access_token`` is stored as given: the
caller encrypts it."""

from typing import Any

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent, from_json, to_json
from buildfarm.master.db.model import clients

# The columns ``change`` may set.
CHANGEABLE = frozenset({"description", "access_token", "scopes", "expires", "disabled",
                        "delete_on_expiration", "last_modified", "last_date_used", "last_rotated"})


class ClientsComponent(DBComponent):
    """Rows of ``clients``."""

    async def get(self, client_id: str) -> dict[str, Any] | None:
        return await self._fetch_one(sa.select(clients).where(clients.c.client_id == client_id), _row)

    async def create(self, client_id: str, access_token: str, now: float, *, expires: float, description: str,
                     scopes: list[str], delete_on_expiration: bool) -> bool:
        """Insert a client; False when the id is taken (the row is left as it was)."""
        statement = sa.insert(clients).values(
            client_id=client_id, access_token=access_token, scopes=to_json(list(scopes)), expires=expires,
            description=description, delete_on_expiration=delete_on_expiration, disabled=False, created=now,
            last_modified=now, last_date_used=now, last_rotated=now)

        def thd(conn: sa.Connection) -> bool:
            try:
                with conn.begin_nested():
                    conn.execute(statement)
            except sa.exc.IntegrityError:
                return False
            return True

        return await self._run(thd)

    async def change(self, client_id: str, **values) -> bool:
        """Set some columns of a client; False when there is no such client."""
        unknown = set(values) - CHANGEABLE
        if unknown:
            raise ValueError(f"clients: cannot change {sorted(unknown)}")
        if "scopes" in values:
            values["scopes"] = to_json(list(values["scopes"]))
        statement = sa.update(clients).where(clients.c.client_id == client_id).values(**values)
        return bool(await self._execute(statement))

    async def delete(self, client_id: str) -> bool:
        """Delete a client; False when there was none."""
        return bool(await self._execute(sa.delete(clients).where(clients.c.client_id == client_id)))

    async def list_after(self, prefix: str | None, after: str | None, limit: int) -> list[dict[str, Any]]:
        """At most ``limit`` clients whose id starts with ``prefix``, after ``after``, by id."""
        query = sa.select(clients).order_by(clients.c.client_id).limit(limit)
        if prefix:
            query = query.where(clients.c.client_id.startswith(prefix, autoescape=True))
        if after is not None:
            query = query.where(clients.c.client_id > after)
        return await self._fetch_all(query, _row)

    async def expired(self, now: float) -> list[str]:
        """The ids of the clients past their expiry that asked to be deleted then."""
        query = sa.select(clients.c.client_id).where(clients.c.expires <= now,
                                                      clients.c.delete_on_expiration.is_(True))
        return [row.client_id for row in await self._run(lambda conn: conn.execute(query).all())]


def _row(row: sa.Row) -> dict[str, Any]:
    scopes = from_json(row.scopes)
    return {"client_id": row.client_id, "description": row.description, "access_token": row.access_token,
            "scopes": scopes if isinstance(scopes, list) else [], "expires": row.expires,
            "disabled": bool(row.disabled), "delete_on_expiration": bool(row.delete_on_expiration),
            "created": row.created, "last_modified": row.last_modified, "last_date_used": row.last_date_used,
            "last_rotated": row.last_rotated}

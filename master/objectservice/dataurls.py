"""The URLs an object's bytes travel by: ``/api/object/v1/data/<token>``, where the token is a
signed, expiring ticket (HMAC-SHA256 under a key derived from the store's upload secret,
``c['cas']['upload_secret']``, so that masters sharing one store accept each other's URLs).

A ``put`` token allows one PUT of ``size`` bytes to the unfinished upload ``uploadId`` of one
object (its ``putUrl``); a ``get`` token allows GETs of one object's bytes (the ``getUrl`` or
``simple`` download, and the redirect of ``download`` and the Queue's ``getArtifact``), so
they need no credentials of their own, as a signed S3 URL needs none.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from buildfarm.master.cas.tickets import b64url, unb64url

PUT, GET = "put", "get"
URL_TTL_S = 3600  # how long a putUrl or getUrl may be used
MAX_TOKEN_CHARS = 4096
KEY_LABEL = b"buildfarm object data urls v1"


class BadDataToken(ValueError):
    """A token this master did not sign, for another use, or expired (the message says which)."""


@dataclass(frozen=True)
class DataGrant:
    """What a token allows."""

    op: str  # PUT or GET
    name: str
    expires: float
    upload_id: str = ""  # PUT: the upload
    size: int = 0  # PUT: the contentLength declared
    content_type: str = ""
    digest: str = ""  # GET: the bytes' SHA-256


class DataURLSigner:
    """Signs and checks tokens under ``secret()`` (bytes, read at each use: a reconfig applies)
    with the time of ``clock``."""

    def __init__(self, secret, clock):
        self._secret = secret
        self.clock = clock

    def sign(self, grant: DataGrant) -> str:
        payload = json.dumps(grant.__dict__, sort_keys=True, separators=(",", ":")).encode()
        body = b64url(payload)
        return f"{body}.{b64url(self._mac(body))}"

    def check(self, token: str, op: str) -> DataGrant:
        """The grant of ``token``; ``BadDataToken`` unless this master signed it for ``op`` and
        it has not expired."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise BadDataToken("this URL was not made by this server")
        body, mac = token.split(".")
        try:
            given = unb64url(mac)
            fields = json.loads(unb64url(body))
            grant = DataGrant(**fields)
        except (ValueError, TypeError, binascii.Error):
            raise BadDataToken("this URL was not made by this server") from None
        if not hmac.compare_digest(given, self._mac(body)):
            raise BadDataToken("this URL's signature does not match: it was not made by this server")
        if grant.op != op:
            raise BadDataToken(f"this URL is for a {grant.op.upper()}, not a {op.upper()}")
        if self.clock.seconds() > grant.expires:
            raise BadDataToken("this URL expired: ask the Object service again (createUpload or "
                               "startDownload)")
        return grant

    def _mac(self, body: str) -> bytes:
        key = hmac.new(self._secret(), KEY_LABEL, hashlib.sha256).digest()
        return hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()


def signer_of(master) -> DataURLSigner:
    """The signer of ``master`` (its ``cas`` service's upload secret, its reactor's time)."""
    return DataURLSigner(lambda: master.cas.settings.upload_secret, master.reactor)

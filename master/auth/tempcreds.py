"""Temporary credentials, checked as Taskcluster's auth service checks them.

``taskcluster.createTemporaryCredentials(clientId, accessToken, start, expiry, scopes, name)``
makes a certificate (JSON, sent in Hawk's ``ext``) signed with the issuer's access token, and an
access token ``HMAC-SHA256(issuer's token, seed)``.  A request signed with them names either the
issuer (unnamed credentials) or ``name`` (named ones: the certificate names the ``issuer``).

``check_certificate`` verifies everything but the issuer's scopes and the request's MAC:

- ``version`` 1, a 44-character ``seed``, ``start``/``expiry`` in milliseconds, ``scopes`` a list
  of strings, a base64 ``signature``;
- ``start`` at most 5 minutes ahead of now, ``expiry`` at most 5 minutes past, and a span of at
  most 31 days;
- the signature, recomputed with the issuer's token, compared in constant time.

The caller then checks that the issuer's scopes satisfy the certificate's (and hold
``auth:create-client:<name>`` for a named credential) and the request's MAC with the token
``temporary_token`` gives.  The issuer is looked up on every request: disabling, deleting,
expiring or resetting the token of the issuer ends its credentials at once (Taskcluster only
does so when the issuer's token changes).
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

CERTIFICATE_VERSION = 1
SEED_CHARS = 44
CLOCK_SLACK_MS = 5 * 60 * 1000  # start may be this far ahead, expiry this far past
MAX_SPAN_MS = 31 * 24 * 3600 * 1000


class BadCertificate(Exception):
    """The certificate is malformed, outside its time window or badly signed; the message says
    which check failed (never a secret)."""


@dataclass(frozen=True)
class Certificate:
    version: int
    seed: str
    start: int  # milliseconds since the epoch
    expiry: int
    scopes: tuple[str, ...]
    signature: str
    issuer: str | None = None  # present on named credentials

    def issuer_for(self, client_id: str) -> str:
        """Who issued credentials presented as ``client_id``."""
        return self.issuer if self.issuer is not None else client_id


def parse_certificate(raw) -> Certificate:
    """The certificate of a Hawk ``ext``'s ``certificate`` (a dict, or its JSON text)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise BadCertificate("ext.certificate is not valid JSON") from None
    if not isinstance(raw, dict):
        raise BadCertificate("ext.certificate must be a JSON object")
    if raw.get("version") != CERTIFICATE_VERSION:
        raise BadCertificate(f"ext.certificate.version must be {CERTIFICATE_VERSION}")
    seed = raw.get("seed")
    if not isinstance(seed, str) or len(seed) != SEED_CHARS:
        raise BadCertificate(f"ext.certificate.seed must be a string of {SEED_CHARS} characters")
    start, expiry = raw.get("start"), raw.get("expiry")
    if not _is_int(start) or not _is_int(expiry):
        raise BadCertificate("ext.certificate.start and expiry must be integers (milliseconds)")
    scopes = raw.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise BadCertificate("ext.certificate.scopes must be a list of strings")
    signature = raw.get("signature")
    if not isinstance(signature, str):
        raise BadCertificate("ext.certificate.signature must be a string")
    issuer = raw.get("issuer")
    if issuer is not None and (not isinstance(issuer, str) or not issuer):
        raise BadCertificate("ext.certificate.issuer must be a non-empty string")
    return Certificate(CERTIFICATE_VERSION, seed, int(start), int(expiry), tuple(scopes), signature, issuer)


def check_times(cert: Certificate, now_s: float) -> None:
    """The certificate's window: started (with 5 minutes of slack), not expired (likewise),
    and no longer than 31 days."""
    now_ms = now_s * 1000
    if cert.start > now_ms + CLOCK_SLACK_MS:
        raise BadCertificate("ext.certificate.start is in the future (more than 5 minutes ahead)")
    if cert.expiry < now_ms - CLOCK_SLACK_MS:
        raise BadCertificate("ext.certificate.expiry is in the past: the temporary credentials expired")
    if cert.expiry - cert.start > MAX_SPAN_MS:
        raise BadCertificate("ext.certificate cannot last longer than 31 days")


def check_signature(cert: Certificate, client_id: str, issuer_token: str) -> None:
    """The signature, recomputed with the issuer's access token, compared in constant time."""
    expected = base64.b64encode(_mac(issuer_token, signed_text(cert, client_id))).decode()
    if not hmac.compare_digest(expected.encode(), cert.signature.encode("utf-8", "replace")):
        raise BadCertificate("ext.certificate.signature is not valid (not signed by the issuer's access "
                             "token)")


def check_named(cert: Certificate, client_id: str) -> None:
    """A named credential's name differs from its issuer (Taskcluster refuses the same)."""
    if cert.issuer is not None and cert.issuer == client_id:
        raise BadCertificate("ext.certificate.issuer must differ from the credentials' clientId "
                             "(named temporary credentials)")


def signed_text(cert: Certificate, client_id: str) -> bytes:
    lines = [f"version:{cert.version}"]
    if cert.issuer is not None:
        lines += [f"clientId:{client_id}", f"issuer:{cert.issuer}"]
    lines += [f"seed:{cert.seed}", f"start:{cert.start}", f"expiry:{cert.expiry}", "scopes:", *cert.scopes]
    return "\n".join(lines).encode()


def temporary_token(cert: Certificate, issuer_token: str) -> str:
    """The access token of the credentials: HMAC-SHA256(issuer's token, seed), URL-safe base64
    without padding (as the client computes it)."""
    return base64.urlsafe_b64encode(_mac(issuer_token, cert.seed.encode())).decode().rstrip("=")


def create_scope(client_id: str) -> str:
    """The scope an issuer needs to name temporary credentials ``client_id``."""
    return f"auth:create-client:{client_id}"


def _mac(key: str, text: bytes) -> bytes:
    return hmac.new(key.encode(), text, hashlib.sha256).digest()


def _is_int(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()

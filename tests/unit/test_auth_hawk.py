"""Hawk in the auth service, in memory: requests signed as the official taskcluster client signs
them (its ext, its temporary credentials, its signed URLs) and by mohawk's Sender, and every
check that can refuse one (master/auth/hawk.py, master/auth/tempcreds.py)."""

import base64
import datetime
import json
import time

import mohawk
import pytest
import pytest_twisted
import taskcluster
import taskcluster.client
from mohawk.base import EmptyValue
from twisted.internet import task

from buildfarm.master.auth import hawk
from buildfarm.master.auth.clients import validate_clients
from buildfarm.master.auth.hawk import NonceCache
from buildfarm.master.auth.identity import BEWIT, HAWK, AuthError
from buildfarm.master.auth.service import AuthService
from buildfarm.master.auth.users import User, validate_users
from fixtures.memoryhttp import MemoryRequest

HOST = "localhost:8010"
ROOT = f"http://{HOST}"
# Wall time, once: the client's signed URLs expire relative to it; the master's clock starts there.
NOW = int(time.time())
KEY = b"clients key " * 3
# A tiny API reference, so that the official client signs calls and URLs for us.
REFERENCE = {"reference": {
    "$schema": "/schemas/common/api-reference-v0.json#", "apiVersion": "auth", "serviceName": "v1",
    "title": "test", "description": "test", "entries": [
        {"type": "function", "method": "get", "route": "/whoami", "name": "whoami", "args": [],
         "stability": "stable", "title": "whoami", "description": "who"}]}}
Tiny = taskcluster.client.createApiClient("Tiny", REFERENCE)
CLIENTS = [
    {"clientId": "ci/builder", "accessToken": "builder-token",
     "scopes": ["builds:*", "auth:create-client:ci/*"]},
    {"clientId": "ci/reader", "accessToken": "reader-token", "scopes": ["builds:read"]},
    {"clientId": "ci/old", "accessToken": "old-token", "scopes": ["builds:read"], "expires": NOW - 1},
]
BUILDER = {"clientId": "ci/builder", "accessToken": "builder-token"}


def service(db=None) -> AuthService:
    clock = task.Clock()
    clock.advance(NOW)
    users, problems = validate_users([User("ann", password="ann-pw", scopes=["changes:*"])], None)
    clients, more = validate_clients(CLIENTS, None)
    assert problems == more == []
    return AuthService(clock, users, (), db=db, clients=clients, clients_key=KEY, run_slowly=_now,
                       iterations=1)


def _now(f, *args):
    from twisted.internet import defer

    return defer.succeed(f(*args))


def request(method: str, uri: str, headers: dict, body: bytes = b"") -> MemoryRequest:
    req = MemoryRequest(method, uri.partition("?")[0])
    req.uri = uri.encode()
    req.requestHeaders.setRawHeaders(b"host", [HOST.encode()])
    for name, value in headers.items():
        req.requestHeaders.setRawHeaders(name.encode(), [value.encode() if isinstance(value, str) else value])
    req.gotLength(len(body))
    req.content.write(body)
    req.content.seek(0)
    return req


def signed(credentials: dict, path: str = "/api/v1/auth/whoami", method: str = "GET", body: bytes = b"",
           content_type: str = "", ts: int = NOW, nonce: str | None = None, authorized_scopes=None,
           always_hash: bool = True, sent_body: bytes | None = None) -> MemoryRequest:
    """A request signed as the taskcluster client signs it (its ext: certificate, authorizedScopes)."""
    options = {"rootUrl": ROOT, "credentials": credentials}
    if authorized_scopes is not None:
        options["authorizedScopes"] = authorized_scopes
    ext = Tiny(options).makeHawkExt()
    key = {"id": credentials["clientId"], "key": credentials["accessToken"], "algorithm": "sha256"}
    sender = mohawk.Sender(key, ROOT + path, method, content=body if always_hash else EmptyValue,
                           content_type=content_type if always_hash else EmptyValue, ext=ext or None,
                           _timestamp=ts, nonce=nonce, always_hash_content=always_hash)
    headers = {"authorization": sender.request_header}
    if content_type:
        headers["content-type"] = content_type
    return request(method, path, headers, body if sent_body is None else sent_body)


async def refusal(auth: AuthService, req) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await auth.identify(req)
    assert caught.value.status == 401
    return caught.value


def temporary(issuer=BUILDER, scopes=("builds:read",), name=None, start_s=-60, expiry_s=3600):
    start = datetime.datetime.fromtimestamp(NOW + start_s, datetime.UTC)
    expiry = datetime.datetime.fromtimestamp(NOW + expiry_s, datetime.UTC)
    made = taskcluster.createTemporaryCredentials(issuer["clientId"], issuer["accessToken"], start, expiry,
                                                  list(scopes), name)
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in made.items()}


# -- a client's own credentials --------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_signed_get_identifies_the_client_with_its_scopes():
    identity = await service().identify(signed(BUILDER))
    assert (identity.method, identity.name) == (HAWK, "ci/builder")
    assert identity.may("builds:force:linux") and not identity.may("changes:add")
    assert not identity.browser_borne


@pytest_twisted.ensureDeferred
async def test_a_user_signs_with_its_password_as_access_token():
    identity = await service().identify(signed({"clientId": "ann", "accessToken": "ann-pw"}))
    assert identity.name == "ann" and identity.may("changes:add")


@pytest_twisted.ensureDeferred
async def test_the_payload_hash_is_checked_when_the_header_has_one():
    auth = service()
    body = b'{"reason": "go"}'
    ok = signed(BUILDER, "/api/v1/builders/x/force", "POST", body, "application/json")
    assert (await auth.identify(ok)).name == "ci/builder"
    tampered = signed(BUILDER, "/api/v1/builders/x/force", "POST", body, "application/json",
                      sent_body=b'{"reason": "evil"}')
    assert (await refusal(auth, tampered)).reason == hawk.BAD_PAYLOAD_HASH
    unhashed = signed(BUILDER, "/api/v1/builders/x/force", "POST", body, "application/json",
                      always_hash=False)
    assert (await auth.identify(unhashed)).name == "ci/builder"


@pytest_twisted.ensureDeferred
async def test_an_unknown_client_an_expired_one_and_a_wrong_token_say_which_check_failed():
    auth = service()
    unknown = await refusal(auth, signed({"clientId": "ci/nobody", "accessToken": "x"}))
    expired = await refusal(auth, signed({"clientId": "ci/old", "accessToken": "old-token"}))
    bad_mac = await refusal(auth, signed({"clientId": "ci/reader", "accessToken": "guess"}))
    assert (unknown.reason, expired.reason, bad_mac.reason) == (
        hawk.UNKNOWN_CLIENT, hawk.EXPIRED, hawk.BAD_MAC)
    assert "ci/nobody" in unknown.message and "expired" in expired.message and "MAC" in bad_mac.message
    for error in (unknown, expired, bad_mac):
        assert "reader-token" not in error.message and "old-token" not in error.message


@pytest_twisted.ensureDeferred
async def test_a_mac_over_another_url_or_method_is_refused():
    auth = service()
    req = signed(BUILDER, "/api/v1/builds")
    req.uri = b"/api/v1/audit"
    assert (await refusal(auth, req)).reason == hawk.BAD_MAC
    req = signed(BUILDER, "/api/v1/builds")
    req.method = b"DELETE"
    assert (await refusal(auth, req)).reason == hawk.BAD_MAC


@pytest_twisted.ensureDeferred
async def test_a_clock_off_by_more_than_15_minutes_is_skew():
    auth = service()
    assert (await auth.identify(signed(BUILDER, ts=NOW - 14 * 60))).name == "ci/builder"
    late = await refusal(auth, signed(BUILDER, ts=NOW - 16 * 60))
    early = await refusal(auth, signed(BUILDER, ts=NOW + 16 * 60))
    assert late.reason == early.reason == hawk.SKEW
    assert str(NOW) in late.message  # the master's time, for the client to correct its clock


@pytest_twisted.ensureDeferred
async def test_the_same_header_twice_is_a_replay():
    auth = service()
    first = signed(BUILDER, nonce="abc123")
    again = request("GET", "/api/v1/auth/whoami", {"authorization": first.getHeader(b"authorization")})
    await auth.identify(first)
    assert (await refusal(auth, again)).reason == hawk.REPLAY
    # Another nonce at the same time is another request.
    assert (await auth.identify(signed(BUILDER, nonce="abc124"))).name == "ci/builder"


def test_the_nonce_cache_forgets_after_the_window_and_stays_bounded():
    clock = task.Clock()
    clock.advance(NOW)
    cache = NonceCache(clock, window_s=900, max_size=3)
    assert not cache.seen("c", "n1", str(NOW))
    assert cache.seen("c", "n1", str(NOW)) and not cache.seen("d", "n1", str(NOW))
    clock.advance(901)
    assert len(cache) == 2 and not cache.seen("c", "n2", str(NOW + 901)) and len(cache) == 1
    for n in range(10):
        cache.seen("c", f"m{n}", str(NOW + 901 + n))
        assert len(cache) <= 3


@pytest_twisted.ensureDeferred
async def test_a_malformed_header_or_ext_is_refused_as_such():
    auth = service()
    garbage = request("GET", "/api/v1/auth/whoami", {"authorization": 'Hawk id="x", what'})
    assert (await refusal(auth, garbage)).reason == hawk.BAD_HEADER
    sender = mohawk.Sender({"id": "ci/builder", "key": "builder-token", "algorithm": "sha256"},
                           ROOT + "/x", "GET", content="", content_type="", ext="not base64 json!",
                           _timestamp=NOW)
    bad_ext = request("GET", "/x", {"authorization": sender.request_header})
    assert (await refusal(auth, bad_ext)).reason == hawk.BAD_EXT


# -- authorizedScopes --------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_authorized_scopes_restrict_the_callers_scopes():
    auth = service()
    identity = await auth.identify(signed(BUILDER, authorized_scopes=["builds:read"]))
    assert identity.may("builds:read") and not identity.may("builds:force:linux")
    beyond = await refusal(auth, signed(BUILDER, authorized_scopes=["changes:add"]))
    assert beyond.reason == hawk.BAD_AUTHORIZED_SCOPES and "changes:add" in beyond.message


# -- temporary credentials ---------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_unnamed_temporary_credentials_carry_the_certificates_scopes():
    identity = await service().identify(signed(temporary(scopes=["builds:read"])))
    assert identity.name == "ci/builder" and identity.may("builds:read")
    assert not identity.may("builds:force:x")
    assert "issued by ci/builder" in identity.account.source


@pytest_twisted.ensureDeferred
async def test_named_temporary_credentials_need_the_create_client_scope():
    auth = service()
    named = await auth.identify(signed(temporary(name="ci/worker-1")))
    assert named.name == "ci/worker-1" and named.may("builds:read")
    reader = {"clientId": "ci/reader", "accessToken": "reader-token"}
    refused = await refusal(auth, signed(temporary(reader, name="ci/worker-2")))
    assert refused.reason == hawk.BAD_CERTIFICATE and "auth:create-client:ci/worker-2" in refused.message


@pytest_twisted.ensureDeferred
async def test_a_certificate_with_scopes_its_issuer_lacks_is_refused():
    reader = {"clientId": "ci/reader", "accessToken": "reader-token"}
    refused = await refusal(service(), signed(temporary(reader, scopes=["builds:force:x"])))
    assert refused.reason == hawk.BAD_CERTIFICATE and "builds:force:x" in refused.message


@pytest.mark.parametrize("start_s, expiry_s, why", [
    (6 * 60, 3600, "start is in the future"),
    (-7200, -6 * 60, "expired"),
])
@pytest_twisted.ensureDeferred
async def test_a_certificate_outside_its_window_is_refused(start_s, expiry_s, why):
    refused = await refusal(service(), signed(temporary(start_s=start_s, expiry_s=expiry_s)))
    assert refused.reason == hawk.BAD_CERTIFICATE and why in refused.message


@pytest_twisted.ensureDeferred
async def test_a_certificate_within_five_minutes_of_its_window_is_accepted():
    auth = service()
    assert await auth.identify(signed(temporary(start_s=4 * 60)))
    assert await auth.identify(signed(temporary(start_s=-7200, expiry_s=-4 * 60)))


def _edited(credentials: dict, **changes) -> dict:
    cert = json.loads(credentials["certificate"])
    cert.update(changes)
    return {**credentials, "certificate": json.dumps(cert)}


@pytest.mark.parametrize("changes, why", [
    ({"version": 2}, "version must be 1"),
    ({"seed": "x" * 43}, "seed must be a string of 44"),
    ({"expiry": (NOW + 32 * 86400) * 1000}, "longer than 31 days"),
    ({"scopes": ["builds:*"]}, "signature is not valid"),
    ({"signature": base64.b64encode(b"0" * 32).decode()}, "signature is not valid"),
    ({"scopes": "builds:read"}, "scopes must be a list"),
])
@pytest_twisted.ensureDeferred
async def test_a_malformed_or_altered_certificate_is_refused(changes, why):
    refused = await refusal(service(), signed(_edited(temporary(), **changes)))
    assert refused.reason == hawk.BAD_CERTIFICATE and why in refused.message


@pytest_twisted.ensureDeferred
async def test_a_named_credential_whose_issuer_is_itself_is_refused():
    creds = temporary(name="ci/worker")
    refused = await refusal(service(), signed({**_edited(creds, issuer="ci/worker")}))
    assert refused.reason == hawk.BAD_CERTIFICATE


@pytest_twisted.ensureDeferred
async def test_an_issuer_disabled_deleted_or_reset_ends_its_temporary_credentials_at_once(db):
    auth = service(db)
    _, token = await auth.clients.create("ci/issuer", NOW + 86400,
                                         scopes=["builds:*", "auth:create-client:*"])
    issuer = {"clientId": "ci/issuer", "accessToken": token}
    unnamed, named = temporary(issuer), temporary(issuer, name="ci/temp")
    assert (await auth.identify(signed(unnamed))).name == "ci/issuer"
    assert (await auth.identify(signed(named))).name == "ci/temp"
    await auth.clients.disable("ci/issuer")
    for creds in (unnamed, named):
        assert (await refusal(auth, signed(creds))).reason == hawk.DISABLED
    await auth.clients.enable("ci/issuer")
    assert (await auth.identify(signed(named))).name == "ci/temp"
    await auth.clients.reset_access_token("ci/issuer")
    for creds in (unnamed, named):
        assert (await refusal(auth, signed(creds))).reason == hawk.BAD_CERTIFICATE
    await auth.clients.delete("ci/issuer")
    for creds in (unnamed, named):
        assert (await refusal(auth, signed(creds))).reason == hawk.UNKNOWN_CLIENT


@pytest_twisted.ensureDeferred
async def test_a_database_client_signs_and_stops_when_disabled_or_expired(db):
    auth = service(db)
    _, token = await auth.clients.create("ci/db", NOW + 60, scopes=["builds:read"])
    creds = {"clientId": "ci/db", "accessToken": token}
    assert (await auth.identify(signed(creds))).may("builds:read")
    await auth.clients.disable("ci/db")
    assert (await refusal(auth, signed(creds))).reason == hawk.DISABLED
    await auth.clients.enable("ci/db")
    auth.clock.advance(61)
    assert (await refusal(auth, signed(creds, ts=NOW + 61))).reason == hawk.EXPIRED


# -- bewits ------------------------------------------------------------------------------------

def bewit_request(credentials=BUILDER, method="GET", expires_in_s: int = 900, **options) -> MemoryRequest:
    """A URL signed by the official client, expiring ``expires_in_s`` after NOW (the master's
    clock here): the client adds its expiration to the wall time, which has moved on since NOW
    (a whole suite may run for more than 15 minutes), so it is given relative to that."""
    client = Tiny({"rootUrl": ROOT, "credentials": credentials, **options})
    url = client.buildSignedUrl("whoami", expiration=NOW + expires_in_s - time.time())
    return request(method, url[len(ROOT):], {})


@pytest_twisted.ensureDeferred
async def test_a_signed_url_from_the_client_identifies_its_signer_on_get():
    identity = await service().identify(bewit_request())
    assert (identity.method, identity.name) == (BEWIT, "ci/builder")


@pytest_twisted.ensureDeferred
async def test_a_signed_url_of_temporary_credentials_with_authorized_scopes_works():
    identity = await service().identify(bewit_request(temporary(), authorizedScopes=["builds:read"]))
    assert identity.may("builds:read") and not identity.may("builds:force:x")


@pytest_twisted.ensureDeferred
async def test_a_bewit_expired_altered_or_on_a_post_is_refused():
    auth = service()
    req = bewit_request()
    auth.clock.advance(16 * 60)
    expired = await refusal(auth, req)
    assert expired.reason == hawk.BAD_BEWIT and "expired" in expired.message
    auth = service()
    altered = bewit_request()
    altered.uri = altered.uri.replace(b"/whoami", b"/audit")
    assert (await refusal(auth, altered)).reason == hawk.BAD_BEWIT
    assert (await refusal(auth, bewit_request(method="POST"))).reason == hawk.BAD_BEWIT
    garbage = request("GET", "/x?bewit=@@@", {})
    assert (await refusal(auth, garbage)).reason == hawk.BAD_BEWIT


# -- guessing ----------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_guessing_a_clients_token_is_limited_per_client_as_basic_logins_are():
    auth = service()
    for n in range(10):
        await refusal(auth, signed({"clientId": "ann", "accessToken": f"guess{n}"}))
    with pytest.raises(AuthError) as caught:
        await auth.identify(signed({"clientId": "ann", "accessToken": "ann-pw"}))
    assert caught.value.status == 429 and caught.value.retry_after
    assert "ann" in caught.value.message
    # Another client from the same address is not locked out by those.
    assert (await auth.identify(signed(BUILDER))).name == "ci/builder"


@pytest_twisted.ensureDeferred
async def test_failed_hawk_calls_from_one_address_are_rate_limited():
    auth = service()
    for n in range(50):
        await refusal(auth, signed({"clientId": f"ci/guess-{n}", "accessToken": "x"}))
    with pytest.raises(AuthError) as caught:
        await auth.identify(signed({"clientId": "ci/reader", "accessToken": "reader-token"}))
    assert caught.value.status == 429 and caught.value.retry_after


@pytest_twisted.ensureDeferred
async def test_a_big_bodys_payload_hash_is_checked_in_a_thread():
    auth = service()
    ran = []

    def run_slowly(f, *args):
        ran.append(f)
        return _now(f, *args)

    auth.hawk._run_slowly = run_slowly
    big = b"x" * (hawk.INLINE_BODY_BYTES + 1)
    ok = signed(BUILDER, "/api/v1/upload", "PUT", big, "application/octet-stream")
    assert (await auth.identify(ok)).name == "ci/builder" and len(ran) == 1
    assert ok.content.read() == big  # the body is left for the handler, rewound
    tampered = signed(BUILDER, "/api/v1/upload", "PUT", big, "application/octet-stream",
                      sent_body=big[:-1] + b"y")
    assert (await refusal(auth, tampered)).reason == hawk.BAD_PAYLOAD_HASH and len(ran) == 2
    await auth.identify(signed(BUILDER, "/api/v1/upload", "PUT", b"small", "text/plain"))
    assert len(ran) == 2


@pytest_twisted.ensureDeferred
async def test_a_timestamp_or_bewit_id_that_is_not_well_formed_is_refused_not_a_crash():
    auth = service()
    header = 'Hawk id="ci/builder", ts="soon", nonce="n", mac="bTJjMw=="'
    assert (await refusal(auth, request("GET", "/x", {"authorization": header}))).reason == hawk.BAD_HEADER
    bad_id = base64.urlsafe_b64encode(f'ci/b\u00e9\\{NOW + 60}\\mac\\'.encode()).decode()
    assert (await refusal(auth, request("GET", f"/x?bewit={bad_id}", {}))).reason in (
        hawk.BAD_BEWIT, hawk.UNKNOWN_CLIENT)


@pytest_twisted.ensureDeferred
async def test_only_a_call_that_passes_records_the_clients_last_use(db):
    auth = service(db)
    _, token = await auth.clients.create("ci/used", NOW + 7200)
    auth.clock.advance(3600)
    later = NOW + 3600
    await refusal(auth, signed({"clientId": "ci/used", "accessToken": "wrong"}, ts=later))
    assert (await auth.clients.get("ci/used")).lastDateUsed == NOW
    await auth.identify(signed({"clientId": "ci/used", "accessToken": token}, ts=later))
    await _until_used(auth, "ci/used", later)


async def _until_used(auth, client_id: str, when: float, deadline_s: float = 5.0) -> None:
    """Poll the client (its last use is written without the call waiting) until it says ``when``."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = time.monotonic() + deadline_s
    while (await auth.clients.get(client_id)).lastDateUsed != when:
        assert time.monotonic() < deadline, "lastDateUsed never written"
        await deferLater(reactor, 0.01)


@pytest_twisted.ensureDeferred
async def test_temporary_credentials_cannot_issue_temporary_credentials():
    auth = service()
    named = temporary(name="ci/worker-1", scopes=["builds:read", "auth:create-client:ci/*"])
    unnamed = temporary(scopes=["builds:read"])
    by_named = await refusal(auth, signed(temporary(named, name="ci/worker-2")))
    by_unnamed = await refusal(auth, signed(temporary(unnamed)))
    assert by_named.reason == hawk.UNKNOWN_CLIENT  # a temporary name is no client
    assert by_unnamed.reason == hawk.BAD_CERTIFICATE  # signed with the temporary token, not the issuer's


@pytest_twisted.ensureDeferred
async def test_temporary_credentials_without_their_certificate_get_a_bad_mac_that_says_so():
    creds = temporary()
    bare = {"clientId": creds["clientId"], "accessToken": creds["accessToken"]}
    refused = await refusal(service(), signed(bare))
    assert refused.reason == hawk.BAD_MAC and "certificate" in refused.message

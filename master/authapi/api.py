"""Taskcluster's Auth service at ``/api/auth/v1/`` (docs/taskcluster.md, "The Auth service"), in
Taskcluster's shapes so that the official client's ``taskcluster.Auth`` drives it.

The clients are the auth service's ``IClientStore`` (``master.auth.clients``), the roles its
``RoleStore`` (``master.auth.roles``).  Each route declares Taskcluster's scope
(``auth:create-client:<clientId>``, ...); a call that gives scopes away (createClient,
updateClient, createRole, updateRole) also needs the caller to hold them: no escalation.  A
refusal answers Taskcluster's error shape, ``{"code", "message", "requestInfo"}``, plus
``required`` and ``unsatisfied`` (the scope expression and the part the caller lacks).

``testAuthenticate`` and ``testAuthenticateGet`` check Hawk as every route does, against the
fixed client ``tester`` / ``no-secret`` whose scopes the request names (Taskcluster's test
client), so that a client library can check its signing without real credentials.
"""

import base64
import binascii

from twisted.internet import defer
from twisted.logger import Logger

from buildfarm.master.auth.clients import parse_expires
from buildfarm.master.auth.hawk import HawkFailure, HawkVerifier
from buildfarm.master.auth.identity import HAWK, AuthError, Identity
from buildfarm.master.auth.interfaces import MAX_LIST_LIMIT, Client, ClientError, iso
from buildfarm.master.auth.roles import Role, RoleError
from buildfarm.master.auth.scopes import (
    ALL_OF,
    Expression,
    ScopeError,
    ScopeSet,
    check_role,
    check_scopes,
    normalize,
)
from buildfarm.master.auth.users import Account
from buildfarm.master.authapi import apireference as ref
from buildfarm.master.http.body import json_object, read_body
from buildfarm.master.http.interfaces import IHTTPMaster
from buildfarm.master.http.routes import PUBLIC, APIEntry, RouteTable, request_identity
from buildfarm.master.http.routing import bounded_klein
from buildfarm.master.http.tcservice import add_taskcluster_error_handlers, error_answer, json_answer

log = Logger()

PREFIX = "/api/auth/v1"
MAX_BODY_BYTES = 1024 * 1024
# Taskcluster's test client (testAuthenticate, testAuthenticateGet).
TESTER_ID = "tester"
TESTER_TOKEN = "no-secret"  # noqa: S105 - Taskcluster's documented test credential
TESTER_GET_SCOPES = ("test:*", "auth:create-client:test:*")
TESTER_GET_REQUIRED = ("test:authenticate-get",)
TESTER_EXPIRES_S = 365 * 24 * 3600.0


def _api(name: str, title: str, description: str, category: str, *, query: tuple[str, ...] = (),
         input: str | None = None, output: str | None = None) -> APIEntry:
    """An entry of the ``auth`` service's reference (authapi/apireference.py), named as
    Taskcluster's Auth API names it."""
    return APIEntry(ref.SERVICE_NAME, name, title, description, category, "stable", query, input, output)


class AuthAPIError(Exception):
    """An error answered in Taskcluster's shape with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class AuthAPI:
    """The Auth service's routes over ``master.auth`` (its clients and roles)."""

    app = bounded_klein()
    routes = RouteTable(app, "auth")
    # The client drops a route's trailing slash (``/roles/`` is sent as ``/roles``): the list
    # routes take both (``strict_slashes=False``), never a redirect.

    def __init__(self, master: IHTTPMaster):
        self.master = master
        self.started = master.auth.clock.seconds()

    def resource(self):
        return self.app.resource()

    @property
    def auth(self):
        return self.master.auth

    # -- errors, in Taskcluster's shape ----------------------------------------------------

    @app.handle_errors(AuthAPIError)
    def _api_error(self, request, failure):
        return self._error(request, failure.value.status, failure.value.message)

    @app.handle_errors(ClientError)
    def _client_error(self, request, failure):
        return self._error(request, failure.value.status, str(failure.value))

    @app.handle_errors(RoleError)
    def _role_error(self, request, failure):
        return self._error(request, failure.value.status, str(failure.value))

    @app.handle_errors(ScopeError)
    def _scope_error(self, request, failure):
        return self._error(request, 400, str(failure.value))

    add_taskcluster_error_handlers(app, "Auth API", lambda api: api.auth.clock)

    def _error(self, request, status: int, message: str, extra: dict | None = None) -> bytes:
        return error_answer(request, status, message, self.auth.clock.seconds(), extra)

    # -- ping and scopes -------------------------------------------------------------------

    @routes.route(f"{PREFIX}/ping", "GET", scope=PUBLIC,
                  api=_api("ping", "Ping the server",
                           "Answers `{\"alive\": true, \"uptime\": <seconds>}` while the master runs.",
                           "Ping", output=ref.PING))
    def ping(self, request):
        """``ping``: ``{"alive": true, "uptime": seconds}``."""
        return json_answer(request, {"alive": True, "uptime": self.auth.clock.seconds() - self.started})

    @routes.route(f"{PREFIX}/scopes/current", "GET", scope="auth:current-scopes",
                  api=_api("currentScopes", "Your scopes",
                           "The scopes of the credentials the request was made with, expanded through the "
                           "roles.",
                           "Scopes", output=ref.SCOPESET))
    def current_scopes(self, request):
        """``currentScopes``: ``{"scopes": [...]}``, the caller's scopes expanded."""
        return json_answer(request, {"scopes": request_identity(request).scopes})

    @routes.route(f"{PREFIX}/scopes/expand", "POST", scope="auth:expand-scopes",
                  api=_api("expandScopes", "Expand scopes",
                           "The given scopes expanded through the roles (`assume:<role>`, recursively).",
                           "Scopes", input=ref.SCOPESET, output=ref.SCOPESET))
    async def expand_scopes(self, request):
        """``expandScopes``: ``{"scopes": [...]}`` in, the same expanded through the roles out."""
        body = _body(request)
        scopes = _scopes(body.get("scopes", []), "scopes")
        return json_answer(request, {"scopes": await self.auth.roles.expand(scopes)})

    # -- the test client ---------------------------------------------------------------------

    @routes.route(f"{PREFIX}/test-authenticate", "POST", scope=PUBLIC, identify=False,
                  api=_api("testAuthenticate", "Test authentication",
                           "Checks a request signed as the test client `tester` / `no-secret` holding "
                           "`clientScopes` against `requiredScopes`; answers the client id and scopes the "
                           "call saw.",
                           "Testing", input=ref.TEST_REQUEST, output=ref.TEST_RESPONSE))
    async def test_authenticate(self, request):
        """``testAuthenticate``: ``{"clientScopes", "requiredScopes"}``; the request signed as
        ``tester`` / ``no-secret`` holding ``clientScopes``, then checked against
        ``requiredScopes``; ``{"clientId", "scopes"}`` as the call saw them."""
        body = _body(request)
        client_scopes = _scopes(body.get("clientScopes", []), "clientScopes")
        required = _scopes(body.get("requiredScopes", []), "requiredScopes")
        return await self._as_tester(request, client_scopes, required)

    @routes.route(f"{PREFIX}/test-authenticate-get/", "GET", scope=PUBLIC, identify=False,
                  strict_slashes=False,
                  api=_api("testAuthenticateGet", "Test authentication (GET)",
                           "As `testAuthenticate`, by a header or a bewit: the tester holds `test:*` and "
                           "`auth:create-client:test:*`, the call requires `test:authenticate-get`.",
                           "Testing", output=ref.TEST_RESPONSE))
    async def test_authenticate_get(self, request):
        """``testAuthenticateGet``: as ``testAuthenticate`` (a header or a bewit), with the
        tester holding ``test:*`` and ``auth:create-client:test:*`` and the call requiring
        ``test:authenticate-get``."""
        return await self._as_tester(request, list(TESTER_GET_SCOPES), list(TESTER_GET_REQUIRED))

    async def _as_tester(self, request, client_scopes: list[str], required: list[str]):
        verifier = HawkVerifier(self.auth.clock, _TesterClients(self.auth.clock, client_scopes),
                                lambda: self.auth.roles)
        header = request.getHeader(b"authorization") or b""
        header = header.encode("latin-1") if isinstance(header, str) else header
        try:
            if header.lower().startswith(b"hawk "):
                caller = await verifier.verify_header(request)
            elif b"bewit" in (request.args or {}):
                caller = await verifier.verify_bewit(request)
            else:
                raise AuthError(401, "sign this request with Hawk as client 'tester', access token "
                                     "'no-secret' (Taskcluster's test credentials)")
        except HawkFailure as e:
            raise AuthError(401, str(e), reason=e.reason) from None
        identity = Identity(Account(caller.client_id, list(caller.scopes)), HAWK,
                            expand=self.auth.roles.expand_now)
        self.auth.require(identity, {ALL_OF: required})
        return json_answer(request, {"clientId": caller.client_id, "scopes": normalize(caller.scopes)})

    # -- clients -----------------------------------------------------------------------------

    @routes.route(f"{PREFIX}/clients/", "GET", scope="auth:list-clients", strict_slashes=False,
                  api=_api("listClients", "List clients",
                           "The clients whose id starts with `prefix`, a page at a time.",
                           "Clients",
                           query=('prefix', 'continuationToken', 'limit'), output=ref.LIST_CLIENTS))
    async def list_clients(self, request):
        """``listClients``: ``?prefix=&continuationToken=&limit=`` -> ``{"clients": [...],
        "continuationToken"?}``."""
        limit = _limit(request)
        clients, token = await self.auth.clients.list(_arg(request, "prefix"),
                                                      _arg(request, "continuationToken"), limit)
        body = {"clients": [await self._client_json(c) for c in clients]}
        if token:
            body["continuationToken"] = token
        return json_answer(request, body)

    @routes.route(f"{PREFIX}/clients/<path:clientId>", "GET", scope="auth:get-client:{clientId}",
                  api=_api("client", "Get a client",
                           "A client, with its scopes expanded through the roles.",
                           "Clients", output=ref.GET_CLIENT))
    async def client(self, request, clientId):  # noqa: N803 - Taskcluster's parameter name
        """``client``: the client, with ``expandedScopes``."""
        return json_answer(request, await self._client_json(await self._get_client(clientId)))

    @routes.route(f"{PREFIX}/clients/<path:clientId>", "PUT", scope="auth:create-client:{clientId}",
                  api=_api("createClient", "Create a client",
                           "Creates a client and answers its access token, shown this once. The caller must "
                           "hold the scopes it gives.",
                           "Clients", input=ref.CREATE_CLIENT_REQUEST, output=ref.CREATE_CLIENT))
    async def create_client(self, request, clientId):  # noqa: N803
        """``createClient``: ``{"expires", "description", "scopes"?, "deleteOnExpiration"?}`` ->
        the client and its ``accessToken`` (shown this once).  The caller must hold the scopes
        it gives."""
        body = _body(request)
        scopes = _scopes(body.get("scopes", []), "scopes")
        self._require(request, [f"auth:create-client:{clientId}", *scopes])
        client, token = await self.auth.clients.create(
            clientId, _expires(body), _description(body), scopes, bool(body.get("deleteOnExpiration", False)))
        return json_answer(request, {**await self._client_json(client), "accessToken": token})

    @routes.route(f"{PREFIX}/clients/<path:clientId>", "POST", scope="auth:update-client:{clientId}",
                  api=_api("updateClient", "Update a client",
                           "Changes a client's expiry, description and scopes; the caller must hold the "
                           "scopes it adds.",
                           "Clients", input=ref.CREATE_CLIENT_REQUEST, output=ref.GET_CLIENT))
    async def update_client(self, request, clientId):  # noqa: N803
        """``updateClient``: as ``createClient``'s body; the caller must hold the scopes it adds
        (those the client did not have)."""
        body = _body(request)
        existing = await self._get_client(clientId)
        scopes = _scopes(body["scopes"], "scopes") if "scopes" in body else list(existing.scopes)
        added = [s for s in scopes if s not in existing.scopes]
        self._require(request, [f"auth:update-client:{clientId}", *added])
        client = await self.auth.clients.update(clientId, _expires(body), _description(body), scopes,
                                                bool(body.get("deleteOnExpiration", False)))
        return json_answer(request, await self._client_json(client))

    @routes.route(f"{PREFIX}/clients/<path:clientId>/reset", "POST",
                  scope="auth:reset-access-token:{clientId}",
                  api=_api("resetAccessToken", "Reset an access token",
                           "A new access token; the old one, and every temporary credential made with it, "
                           "stop working at once.",
                           "Clients", output=ref.CREATE_CLIENT))
    async def reset_access_token(self, request, clientId):  # noqa: N803
        """``resetAccessToken``: a new access token; the old one (and every temporary
        credential made with it) stops working at once."""
        client, token = await self.auth.clients.reset_access_token(clientId)
        return json_answer(request, {**await self._client_json(client), "accessToken": token})

    @routes.route(f"{PREFIX}/clients/<path:clientId>/enable", "POST", scope="auth:enable-client:{clientId}",
                  api=_api("enableClient", "Enable a client",
                           "The client, enabled.",
                           "Clients", output=ref.GET_CLIENT))
    async def enable_client(self, request, clientId):  # noqa: N803
        """``enableClient``: the client, enabled."""
        return json_answer(request, await self._client_json(await self.auth.clients.enable(clientId)))

    @routes.route(f"{PREFIX}/clients/<path:clientId>/disable", "POST", scope="auth:disable-client:{clientId}",
                  api=_api("disableClient", "Disable a client",
                           "The client, disabled: it and its temporary credentials stop authenticating at "
                           "once.",
                           "Clients", output=ref.GET_CLIENT))
    async def disable_client(self, request, clientId):  # noqa: N803
        """``disableClient``: the client, disabled (it and its temporary credentials stop
        authenticating at once)."""
        return json_answer(request, await self._client_json(await self.auth.clients.disable(clientId)))

    @routes.route(f"{PREFIX}/clients/<path:clientId>", "DELETE", scope="auth:delete-client:{clientId}",
                  api=_api("deleteClient", "Delete a client",
                           "Deletes a client (a missing one is not an error).",
                           "Clients"))
    async def delete_client(self, request, clientId):  # noqa: N803
        """``deleteClient``: gone (a missing client is not an error); an empty answer."""
        await self.auth.clients.delete(clientId)
        return json_answer(request, {})

    async def _get_client(self, client_id: str) -> Client:
        client = await self.auth.clients.get(client_id)
        if client is None:
            raise AuthAPIError(404, f"no client {client_id!r}")
        return client

    async def _client_json(self, client: Client) -> dict:
        return client.to_json(await self.auth.roles.expand(list(client.scopes)))

    # -- roles -------------------------------------------------------------------------------

    @routes.route(f"{PREFIX}/roles/", "GET", scope="auth:list-roles", strict_slashes=False,
                  api=_api("listRoles", "List roles",
                           "Every role, in one list (not paged, as in Taskcluster).",
                           "Roles", output=ref.LIST_ROLES))
    def list_roles(self, request):
        """``listRoles``: every role (a list, not paged, as in Taskcluster)."""
        return json_answer(request, [self._role_json(r) for r in self.auth.roles.all()])

    @routes.route(f"{PREFIX}/roles2/", "GET", scope="auth:list-roles", strict_slashes=False,
                  api=_api("listRoles2", "List roles (paged)",
                           "The roles, a page at a time.",
                           "Roles", query=('continuationToken', 'limit'), output=ref.LIST_ROLES2))
    def list_roles2(self, request):
        """``listRoles2``: ``?continuationToken=&limit=`` -> ``{"roles": [...], "continuationToken"?}``."""
        page, token = _page(self.auth.roles.all(), request)
        return json_answer(request, _with_token({"roles": [self._role_json(r) for r in page]}, token))

    @routes.route(f"{PREFIX}/roleids/", "GET", scope="auth:list-roles", strict_slashes=False,
                  api=_api("listRoleIds", "List role ids",
                           "The role ids, a page at a time.",
                           "Roles", query=('continuationToken', 'limit'), output=ref.LIST_ROLE_IDS))
    def list_role_ids(self, request):
        """``listRoleIds``: ``{"roleIds": [...], "continuationToken"?}``."""
        page, token = _page(self.auth.roles.all(), request)
        return json_answer(request, _with_token({"roleIds": [r.roleId for r in page]}, token))

    @routes.route(f"{PREFIX}/roles/<path:roleId>", "GET", scope="auth:get-role:{roleId}",
                  api=_api("role", "Get a role",
                           "A role, with its expanded scopes.",
                           "Roles", output=ref.GET_ROLE))
    def role(self, request, roleId):  # noqa: N803
        """``role``: the role, with ``expandedScopes``."""
        return json_answer(request, self._role_json(self._get_role(roleId)))

    @routes.route(f"{PREFIX}/roles/<path:roleId>", "PUT", scope="auth:create-role:{roleId}",
                  api=_api("createRole", "Create a role",
                           "Creates a role; the caller must hold its scopes.",
                           "Roles", input=ref.CREATE_ROLE_REQUEST, output=ref.GET_ROLE))
    async def create_role(self, request, roleId):  # noqa: N803
        """``createRole``: ``{"scopes", "description"}``; the caller must hold the scopes."""
        body = _body(request)
        scopes = check_role(roleId, _scopes(body.get("scopes"), "scopes"))  # 400 before any 403
        self._require(request, [f"auth:create-role:{roleId}", *scopes])
        role = await self.auth.roles.create(roleId, _description(body), scopes)
        return json_answer(request, self._role_json(role))

    @routes.route(f"{PREFIX}/roles/<path:roleId>", "POST", scope="auth:update-role:{roleId}",
                  api=_api("updateRole", "Update a role",
                           "Changes a role's description and scopes; the caller must hold the scopes it "
                           "adds.",
                           "Roles", input=ref.CREATE_ROLE_REQUEST, output=ref.GET_ROLE))
    async def update_role(self, request, roleId):  # noqa: N803
        """``updateRole``: the caller must hold the scopes it adds (those the role's former
        expansion did not already give)."""
        body = _body(request)
        scopes = check_role(roleId, _scopes(body.get("scopes"), "scopes"))
        former = self.auth.roles.expand_now(self._get_role(roleId).scopes)
        held = ScopeSet(former)
        added = [s for s in scopes if not held.has(s)]
        self._require(request, [f"auth:update-role:{roleId}", *added])
        role = await self.auth.roles.update(roleId, _description(body), scopes)
        return json_answer(request, self._role_json(role))

    @routes.route(f"{PREFIX}/roles/<path:roleId>", "DELETE", scope="auth:delete-role:{roleId}",
                  api=_api("deleteRole", "Delete a role",
                           "Deletes a role (a missing one is not an error).",
                           "Roles"))
    async def delete_role(self, request, roleId):  # noqa: N803
        """``deleteRole``: gone (a missing role is not an error); an empty answer."""
        await self.auth.roles.delete(roleId)
        return json_answer(request, {})

    def _get_role(self, role_id: str) -> Role:
        role = self.auth.roles.get(role_id)
        if role is None:
            raise AuthAPIError(404, f"no role {role_id!r}")
        return role

    def _role_json(self, role: Role) -> dict:
        return {"roleId": role.roleId, "scopes": list(role.scopes), "description": role.description,
                "created": iso(role.created), "lastModified": iso(role.lastModified),
                "expandedScopes": self.auth.roles.expand_now([f"assume:{role.roleId}"])}

    # -- escalation ----------------------------------------------------------------------------

    def _require(self, request, scopes: list[str]) -> None:
        """The caller must hold every one of ``scopes`` (the route's own and those it gives)."""
        self.auth.require(request_identity(request), _all_of(scopes))


class _TesterClients:
    """The one client of ``testAuthenticate``: ``tester`` / ``no-secret`` with ``scopes``."""

    def __init__(self, clock, scopes: list[str]):
        now = clock.seconds()
        self.client = Client(TESTER_ID, "Taskcluster's test client", now + TESTER_EXPIRES_S,
                             scopes=tuple(scopes), created=now, lastModified=now, source="test")

    def credentials(self, client_id: str) -> defer.Deferred:
        return defer.succeed((self.client, TESTER_TOKEN) if client_id == TESTER_ID else None)

    def used(self, client) -> defer.Deferred:
        return defer.succeed(None)


# -- helpers ----------------------------------------------------------------------------------

def _all_of(scopes: list[str]) -> Expression:
    unique = list(dict.fromkeys(scopes))
    return unique[0] if len(unique) == 1 else {ALL_OF: unique}


def _body(request) -> dict:
    return json_object(read_body(request, MAX_BODY_BYTES))


def _scopes(value, field: str) -> list[str]:
    if value is None:
        raise AuthAPIError(400, f"{field} is required: a list of scopes")
    try:
        return check_scopes(value, field)
    except ScopeError as e:
        raise AuthAPIError(400, str(e)) from None


def _description(body: dict) -> str:
    description = body.get("description", "")
    if not isinstance(description, str):
        raise AuthAPIError(400, "description must be a string")
    return description


def _expires(body: dict) -> float:
    if "expires" not in body:
        raise AuthAPIError(400, "expires is required: a date like '2030-01-01T00:00:00.000Z'")
    return parse_expires(body["expires"], "the request")


def _arg(request, name: str) -> str | None:
    values = (request.args or {}).get(name.encode())
    return values[-1].decode("utf-8", "replace") if values else None


def _limit(request) -> int:
    text = _arg(request, "limit")
    if text is None:
        return MAX_LIST_LIMIT
    if not text.isdigit() or int(text) < 1:
        raise AuthAPIError(400, f"limit must be a positive integer, not {text!r}")
    return min(int(text), MAX_LIST_LIMIT)


def _page(roles: list[Role], request) -> tuple[list[Role], str | None]:
    """A page of ``roles`` (sorted by id) after the continuation token's role id."""
    limit = _limit(request)
    token = _arg(request, "continuationToken")
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise AuthAPIError(400, f"continuationToken {token!r} is not one this API gave") from None
        roles = [r for r in roles if r.roleId > after]
    page = roles[:limit]
    more = len(roles) > limit
    return page, (base64.urlsafe_b64encode(page[-1].roleId.encode()).decode().rstrip("=") if more else None)


def _with_token(body: dict, token: str | None) -> dict:
    if token:
        body["continuationToken"] = token
    return body


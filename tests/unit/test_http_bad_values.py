"""Bad values on every endpoint that takes them, on a real master built in memory (real
database, botmaster, schedulers and SlaveAPI; each request parsed by a real HTTP channel of
the web port's site): 23-digit ids and offsets, JSON nested 5,000 deep, lone surrogates and
``when_timestamp`` 1e400 answer 400 or 404 with the JSON error (the pages: their HTML error
page), never 500."""

import json

import pytest
import pytest_twisted

from buildfarm.master.db.testing import add_running_build
from fixtures.channelhttp import Response, request
from fixtures.inprocessmaster import CHANGE_SECRET, TOKEN, make_basedir, start_master

BIG = "9" * 23
DEEP = b'{"properties": ' + b"[" * 5000 + b"]" * 5000 + b"}"


@pytest.fixture(scope="module")
def basedir(tmp_path_factory):
    """A master's basedir with its master.cfg and a migrated SQLite database (made once)."""
    return make_basedir(str(tmp_path_factory.mktemp("master")))


@pytest_twisted.async_yield_fixture
async def site(basedir):
    """The web port's site of a started master (not listening: requests go in memory)."""
    master = await start_master(basedir)
    await add_running_build(master.db)  # build 1: its stop route reads a body
    yield master.www.make_site()
    await master.stopService()


JSON_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}",
                "x-buildfarm-secret": CHANGE_SECRET}

# (method, path, body): every endpoint that takes an id or a count in its path or query.
ID_IN_PATH = [
    ("GET", f"/api/v1/changes/{BIG}"),
    ("GET", f"/api/v1/buildrequests/{BIG}"),
    ("POST", f"/api/v1/buildrequests/{BIG}/cancel"),
    ("GET", f"/api/v1/builds/{BIG}"),
    ("POST", f"/api/v1/builds/{BIG}/stop"),
    ("GET", f"/api/v1/builds/{BIG}/steps/0/logs/stdio"),
    ("GET", f"/api/v1/builds/1/steps/{BIG}/logs/stdio"),
    ("GET", f"/api/v1/logs/{BIG}"),
    ("GET", f"/api/v1/logs/{BIG}/tail"),
    ("GET", f"/api/v1/logs/{BIG}/raw"),
    ("GET", f"/builds/{BIG}"),
    ("POST", f"/builds/{BIG}/stop"),
    ("GET", f"/builds/{BIG}/events"),
    ("POST", f"/buildrequests/{BIG}/cancel"),
    ("GET", f"/builds/{BIG}/steps/0/logs/stdio"),
    ("GET", f"/builds/1/steps/{BIG}/logs/stdio/raw"),
    ("GET", f"/builds/{BIG}/steps/0/logs/stdio/lines"),
]
INT_IN_QUERY = [
    ("GET", f"/api/v1/changes?offset={BIG}"),
    ("GET", f"/api/v1/buildrequests?offset={BIG}"),
    ("GET", f"/api/v1/builds?offset={BIG}"),
    ("GET", f"/api/v1/builders/linux/builds?offset={BIG}"),
    ("GET", f"/api/v1/slaves?offset={BIG}"),
    ("GET", f"/api/v1/logs/1?offset={BIG}"),
    ("GET", f"/api/v1/logs/1/tail?lines={BIG}"),
    ("GET", f"/api/v1/builds?limit={BIG}"),
    ("GET", f"/builders/linux?page={BIG}"),
    ("GET", f"/builders/linux?forced={BIG}"),
    ("GET", f"/slaves/bs1?requested={BIG}"),
    ("GET", f"/slaveapi/audit?limit={BIG}"),
    ("GET", f"/slaveapi/slaves/bs1/actions/reboot?requestid={BIG}"),
]
JSON_BODY_ENDPOINTS = [
    ("POST", "/api/v1/changes"),
    ("POST", "/api/v1/builders/linux/force"),
    ("POST", "/api/v1/builds/1/stop"),
    ("POST", "/slaveapi/slaves/bs1/actions/disable"),
]
BAD_BODIES = {
    "nested 5000 deep": DEEP,
    "lone surrogate": b'{"comments": "\\ud800", "reason": "\\ud800", "properties": {"x": "\\udfff"}}',
    "1e400": b'{"when_timestamp": 1e400, "properties": {"n": 1e400}}',
    "NaN": b'{"when_timestamp": NaN}',
}


def is_json_app(path: str) -> bool:
    return path.startswith(("/api/", "/slaveapi/"))


def assert_error(response: Response, path: str, statuses: tuple[int, ...]) -> None:
    assert response.code in statuses, (response.code, response.body[:300])
    if is_json_app(path):
        assert response.header("content-type") == "application/json", response.headers
        assert "error" in json.loads(response.body)
    else:  # the pages' error page
        assert response.header("content-type").startswith("text/html")
        assert b"<h1" in response.body or b"<title" in response.body


@pytest.mark.parametrize(("method", "path"), ID_IN_PATH)
@pytest_twisted.ensureDeferred
async def test_a_23_digit_id_in_a_path_is_not_found(site, method, path):
    response = await request(site, method, path, headers={"authorization": f"Bearer {TOKEN}"})
    assert_error(response, path, (404,))


@pytest.mark.parametrize(("method", "path"), INT_IN_QUERY)
@pytest_twisted.ensureDeferred
async def test_a_23_digit_number_in_a_query_is_a_bad_request(site, method, path):
    response = await request(site, method, path, headers={"authorization": f"Bearer {TOKEN}"})
    assert_error(response, path, (400,))
    assert BIG[:10] in response.body.decode("utf-8", "replace")  # the answer says which value


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize(("method", "path"), JSON_BODY_ENDPOINTS)
@pytest_twisted.ensureDeferred
async def test_a_hostile_json_body_is_a_bad_request(site, method, path, body):
    response = await request(site, method, path, body, JSON_HEADERS)
    assert_error(response, path, (400,))


@pytest.mark.parametrize("when", ["-1", "1e300", str(10**400)])
@pytest_twisted.ensureDeferred
async def test_a_change_from_beyond_time_is_a_bad_request_naming_the_field(site, when):
    response = await request(site, "POST", "/api/v1/changes", f'{{"when_timestamp": {when}}}'.encode(),
                             JSON_HEADERS)
    assert response.code == 400
    assert "when_timestamp" in json.loads(response.body)["error"]


@pytest.mark.parametrize("path", ["/api/v1/builds?offset=%s", "/builders/linux?page=%s",
                                  "/slaveapi/audit?limit=%s"])
@pytest.mark.parametrize("value", ["9" * 5000, "%D9%A1%D9%A2", "-1", "1.5", "%2B1"])
@pytest_twisted.ensureDeferred
async def test_other_non_numbers_in_a_query_are_bad_requests(site, path, value):
    path = path % value
    response = await request(site, "GET", path, headers={"authorization": f"Bearer {TOKEN}"})
    assert_error(response, path, (400,))


@pytest_twisted.ensureDeferred
async def test_a_5000_digit_id_in_a_path_is_not_found(site):
    response = await request(site, "GET", f"/api/v1/builds/{'9' * 5000}")
    assert_error(response, "/api/", (404,))


@pytest_twisted.ensureDeferred
async def test_good_values_still_work(site):
    assert (await request(site, "GET", "/api/v1/builds?offset=5&limit=2")).code == 200
    change = await request(site, "POST", "/api/v1/changes",
                           b'{"when_timestamp": 1700000000.5, "comments": "caf\\u00e9"}', JSON_HEADERS)
    assert change.code == 200, change.body
    assert (await request(site, "GET", f"/api/v1/changes/{json.loads(change.body)['changeid']}")).code == 200


SURROGATE_PATHS = [
    ("GET", "/api/v1/builders/%ED%A0%80"),
    ("GET", "/api/v1/slaves/%ED%A0%80"),
    ("GET", "/api/v1/builds?builder=%ED%A0%80"),
    ("GET", "/builders/%ED%A0%80"),
    ("GET", "/slaves/%FF%ED%A0%80"),
    ("GET", "/slaveapi/slaves/%ED%A0%80"),
    ("POST", "/slaveapi/slaves/bs1/actions/disable?reason=%ED%A0%80"),
]


@pytest.mark.parametrize(("method", "path"), SURROGATE_PATHS)
@pytest_twisted.ensureDeferred
async def test_an_encoded_lone_surrogate_in_a_path_or_query_is_refused_or_replaced(site, method, path):
    response = await request(site, method, path, headers={"authorization": f"Bearer {TOKEN}"})
    assert response.code < 500, (response.code, response.body[:300])

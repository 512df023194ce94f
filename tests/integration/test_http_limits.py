"""The web port of a real master daemon (``buildmaster start``) against a raw socket client:
a 1 GiB ``Content-Length`` is refused at once, a chunked body is cut off at the cap, a client
trickling its headers is cut off at ``c['www']['header_timeout']``, and each refusal is one
line in twistd.log; the master serves on afterwards."""

import json
import socket

from fixtures.daemons import MASTER_CFG, wait_for

HEADER_TIMEOUT_S = 1.5
READ_DEADLINE_S = 10.0
API_CAP = 1024 * 1024


def config(pb_port: int, www_port: int) -> str:
    text = MASTER_CFG.format(slavenames=["bs1"], command=["true"], pb_port=pb_port, www_port=www_port)
    return text + f"c['www']['header_timeout'] = {HEADER_TIMEOUT_S}\n"


def connect(master) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", master.www_port), timeout=READ_DEADLINE_S)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (the socket's timeout bounds each read)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_oversized_and_slow_requests_are_refused_before_any_handler(fleet):
    master = fleet.master(config=config)
    wait_for(lambda: master.request("GET", "/api/v1")[0] == 200, "the web port", 30)

    with connect(master) as sock:  # announces 1 GiB, sends none of it
        sock.sendall(b"POST /api/v1/changes HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % 1024**3)
        status, body = status_and_json(read_until_closed(sock))
    assert status == 413 and str(API_CAP) in body["error"]

    with connect(master) as sock:  # a chunked body that never ends
        sock.sendall(b"POST /api/v1/changes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
        sent = 0
        try:
            while sent < 64 * API_CAP:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, body = status_and_json(read_until_closed(sock))
    assert status == 413 and sent < 64 * API_CAP  # the master cut the connection long before 64 MiB

    with connect(master) as sock:  # headers that trickle in
        sock.sendall(b"GET /api/v1 HTTP/1.1\r\n")
        sock.sendall(b"Host: x\r\n")
        status, body = status_and_json(read_until_closed(sock))
    assert status == 408 and "headers" in body["error"]

    assert master.request("GET", "/api/v1")[0] == 200
    log = master.log_text()
    assert log.count("HTTP 413 before any handler") == 2 and log.count("HTTP 408 before any handler") == 1

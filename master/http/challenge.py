"""The headers of an authentication refusal, the same on every HTTP surface that takes
credentials (the JSON API, the SlaveAPI, the pages' rate limit)."""

AUTH_SCHEMES = ("Basic", "Bearer")


def add_challenges(request, realm: str) -> None:
    """``WWW-Authenticate`` for each scheme the surfaces accept (a 401)."""
    for scheme in AUTH_SCHEMES:
        request.responseHeaders.addRawHeader(b"www-authenticate", f'{scheme} realm="{realm}"'.encode())


def add_refusal_headers(request, error, realm: str) -> None:
    """The headers of an ``AuthError``: the challenges of a 401, ``Retry-After`` of a rate limit."""
    if error.status == 401:
        add_challenges(request, realm)
    retry_after = error.retry_after_header()
    if retry_after is not None:
        request.setHeader(b"retry-after", retry_after)

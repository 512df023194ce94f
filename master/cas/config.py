"""``c['cas']``: the content-addressed store's configuration, checked by checkconfig.

::

    c['cas'] = {
        'backend': 'file',           # the only back-end so far: files under the basedir
        'path': 'cas',               # its root, relative to the master's basedir
        'expiry_days': 30,           # how long an unused item is kept (the janitor is to come)
        'max_item_bytes': 2**30,     # the largest item preupload accepts
        'upload_secret': {'file': 'cas.secret'},  # signs upload tickets (default: random per start)
    }
"""

import secrets

from buildfarm.master.auth.secret import SecretError, resolve_secret
from buildfarm.master.cas.settings import BACKENDS, CASSettings

CAS_KEYS = frozenset({"backend", "path", "expiry_days", "max_item_bytes", "inline_max_bytes",
                      "retrieve_inline_max_bytes", "upload_secret"})
INT_KEYS = ("max_item_bytes", "inline_max_bytes", "retrieve_inline_max_bytes")


def validate_cas_config(raw: dict, basedir: str) -> tuple[CASSettings, list[tuple[str, str]]]:
    """The ``CASSettings`` of ``raw['cas']`` and the ``(key, message)`` problems found."""
    cas = raw.get("cas", {})
    if not isinstance(cas, dict):
        return CASSettings(), [("cas", "c['cas'] must be a dict like {'backend': 'file', 'expiry_days': 30}")]
    problems = [("cas", f"unknown c['cas'] key {key!r}") for key in sorted(set(cas) - CAS_KEYS, key=str)]
    given: dict = {}
    backend = cas.get("backend", "file")
    if backend not in BACKENDS:
        problems.append(("cas", f"c['cas']['backend'] must be one of {', '.join(BACKENDS)}, not {backend!r}"))
    given["backend"] = backend
    path = cas.get("path", "cas")
    if not isinstance(path, str) or not path:
        problems.append(("cas", "c['cas']['path'] must be a directory (relative to the basedir)"))
    else:
        given["path"] = path
    expiry = cas.get("expiry_days", CASSettings.expiry_days)
    if isinstance(expiry, bool) or not isinstance(expiry, int | float) or not 0 < expiry <= 36500:
        problems.append(("cas", f"c['cas']['expiry_days'] must be a number of days above 0, not {expiry!r}"))
    else:
        given["expiry_days"] = float(expiry)
    for key in INT_KEYS:
        value = cas.get(key, getattr(CASSettings, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(("cas", f"c['cas'][{key!r}] must be a number of bytes, not {value!r}"))
        else:
            given[key] = value
    if "upload_secret" in cas:
        try:
            given["upload_secret"] = resolve_secret(cas["upload_secret"], basedir,
                                                    "c['cas']['upload_secret']").reveal().encode()
        except SecretError as e:
            problems.append(("cas", str(e)))
    else:
        given["upload_secret"] = secrets.token_bytes(32)
    return CASSettings(**given), problems

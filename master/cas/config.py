"""``c['cas']``: the content-addressed store's configuration, checked by checkconfig (one
problem a line).

::

    c['cas'] = {
        'backend': 'file',           # or 's3'
        'path': 'cas',               # the file back-end's root, relative to the master's basedir
        'bucket': 'isolate', 'prefix': 'cas/', 'endpoint_url': 'https://s3.example',
        'region': 'eu-west-1', 'access_key_id': {'env': 'CAS_KEY'},
        'secret_access_key': {'env': 'CAS_SECRET'},  # the s3 back-end
        'expiry_days': 30,           # how long an unused item is kept (fractions allowed)
        'janitor_interval': 3600,    # seconds between the janitor's passes
        'max_item_bytes': 2**30,     # the largest item preupload accepts
        'upload_secret': {'file': 'cas.secret'},  # signs upload tickets (default: random per start)
    }
"""

import re
import secrets

from buildfarm.master.auth.secret import SecretError, resolve_secret
from buildfarm.master.cas.settings import BACKENDS, CASSettings, S3Location

S3_KEYS = frozenset({"bucket", "prefix", "endpoint_url", "region", "access_key_id", "secret_access_key"})
CAS_KEYS = frozenset({"backend", "path", "expiry_days", "max_item_bytes", "inline_max_bytes",
                      "retrieve_inline_max_bytes", "upload_secret", "janitor_interval"}) | S3_KEYS
INT_KEYS = ("max_item_bytes", "inline_max_bytes", "retrieve_inline_max_bytes")
MAX_EXPIRY_DAYS = 36500
MIN_JANITOR_INTERVAL_S = 0.1
MAX_JANITOR_INTERVAL_S = 7 * 24 * 3600
# S3's bucket naming rules (lower case, digits, '.', '-'; 3 to 63 characters).
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
PREFIX_RE = re.compile(r"[A-Za-z0-9!_.*'()/\-]{0,512}")
REGION_RE = re.compile(r"[a-z0-9\-]{1,32}")


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
    if isinstance(expiry, bool) or not isinstance(expiry, int | float) or not 0 < expiry <= MAX_EXPIRY_DAYS:
        problems.append(("cas", f"c['cas']['expiry_days'] must be a number of days above 0 (fractions "
                                f"allowed), at most {MAX_EXPIRY_DAYS}, not {expiry!r}"))
    else:
        given["expiry_days"] = float(expiry)
    interval = cas.get("janitor_interval", CASSettings.janitor_interval_s)
    if isinstance(interval, bool) or not isinstance(interval, int | float) \
            or not MIN_JANITOR_INTERVAL_S <= interval <= MAX_JANITOR_INTERVAL_S:
        problems.append(("cas", f"c['cas']['janitor_interval'] must be a number of seconds from "
                                f"{MIN_JANITOR_INTERVAL_S:g} to {MAX_JANITOR_INTERVAL_S}, not {interval!r}"))
    else:
        given["janitor_interval_s"] = float(interval)
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
            given["secret_is_set"] = True
        except SecretError as e:
            problems.append(("cas", str(e)))
    else:
        given["upload_secret"] = secrets.token_bytes(32)
    if backend == "s3":
        given["s3"] = _s3_location(cas, basedir, problems)
    else:
        problems += [("cas", f"c['cas'][{key!r}] is only for the 's3' back-end (backend is {backend!r})")
                     for key in sorted(S3_KEYS & set(cas))]
    return CASSettings(**given), problems


def _s3_location(cas: dict, basedir: str, problems: list) -> S3Location | None:
    """The bucket of the s3 back-end; its problems appended to ``problems``."""
    before = len(problems)
    bucket = cas.get("bucket")
    if not isinstance(bucket, str) or not BUCKET_RE.fullmatch(bucket):
        problems.append(("cas", f"c['cas']['bucket'] must name an S3 bucket (3 to 63 lower-case letters, "
                                f"digits, '.' and '-') for the 's3' back-end, not {bucket!r}"))
    prefix = cas.get("prefix", "")
    if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
        problems.append(("cas", f"c['cas']['prefix'] must be a key prefix of letters, digits and "
                                f"!_.*'()/- (at most 512), not {prefix!r}"))
    endpoint = cas.get("endpoint_url")
    if endpoint is not None and (not isinstance(endpoint, str)
                                 or not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", endpoint)):
        problems.append(("cas", f"c['cas']['endpoint_url'] must be an http:// or https:// URL, "
                                f"not {endpoint!r}"))
    region = cas.get("region")
    if region is not None and (not isinstance(region, str) or not REGION_RE.fullmatch(region)):
        problems.append(("cas", f"c['cas']['region'] must be a region name such as 'us-east-1', "
                                f"not {region!r}"))
    keys = {}
    for key in ("access_key_id", "secret_access_key"):
        if key in cas:
            try:
                keys[key] = resolve_secret(cas[key], basedir, f"c['cas'][{key!r}]").reveal()
            except SecretError as e:
                problems.append(("cas", str(e)))
    if ("access_key_id" in cas) != ("secret_access_key" in cas):
        problems.append(("cas", "c['cas'] needs both 'access_key_id' and 'secret_access_key', or neither "
                                "(then boto3's default credentials are used)"))
    if len(problems) > before:
        return None
    return S3Location(bucket, prefix, endpoint, region, keys.get("access_key_id"),
                      keys.get("secret_access_key"))

"""Password hashes: Django's ``pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`` format
(PBKDF2-HMAC-SHA256 from :mod:`hashlib`); ``python -m buildfarm.master.auth`` prints one."""

import base64
import binascii
import getpass
import hashlib
import hmac
import secrets
import sys

HASH_ALGORITHM = "pbkdf2_sha256"
DEFAULT_HASH_ITERATIONS = 600_000
SALT_BYTES = 16


def hash_password(password: str, iterations: int = DEFAULT_HASH_ITERATIONS) -> str:
    """A ``pbkdf2_sha256$iterations$salt$hash`` string for ``password_hash=``."""
    salt = base64.b64encode(secrets.token_bytes(SALT_BYTES)).decode().rstrip("=")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{HASH_ALGORITHM}${iterations}${salt}${base64.b64encode(digest).decode()}"


def check_hash_format(encoded: str) -> str | None:
    """Why ``encoded`` is not a usable password hash, or None."""
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != HASH_ALGORITHM:
        return f"password_hash must look like {HASH_ALGORITHM}$<iterations>$<salt>$<hash>"
    if not parts[1].isdigit() or int(parts[1]) < 1:
        return "password_hash: the iteration count must be a positive integer"
    try:
        base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return "password_hash: the hash is not base64"
    return None


def verify_password_hash(password: str, encoded: str) -> bool:
    """Whether ``password`` hashes to ``encoded`` (slow: run it off the reactor thread)."""
    _, iterations, salt, expected = encoded.split("$")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    return hmac.compare_digest(base64.b64encode(digest), expected.encode())


def main() -> None:
    """``python -m buildfarm.master.auth``: print a password_hash for a typed password."""
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    print(hash_password(password))

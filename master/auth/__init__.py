"""Authentication and authorization of the master's users: secrets (secret.py), password
hashes (passwords.py), users and scopes (users.py), checking credentials (authenticator.py)
and the web UI's login sessions (sessions.py)."""

"""Taskcluster's Auth service (``/api/auth/v1/``) over the master's auth service."""

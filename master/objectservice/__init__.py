"""Taskcluster's Object service at ``/api/object/v1/``, backed by the content-addressed store
(docs/taskcluster.md, "Artifacts and the Object service")."""

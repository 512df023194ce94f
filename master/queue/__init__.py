"""The Queue service of Taskcluster's layout (``/api/queue/v1/``, docs/taskcluster.md)."""

"""The content-addressed store: Isolate namespaces, the storage back-ends and the Isolate v1
HTTP API the master serves under ``/_ah/api/isolateservice/v1/`` (docs/cas.md)."""

"""Several masters sharing one database: heartbeats, dead-master reclaim (docs/operations.md)."""

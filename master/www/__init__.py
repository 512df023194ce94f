"""The master's web site: the JSON API (and, later, HTML pages and the SlaveAPI)."""

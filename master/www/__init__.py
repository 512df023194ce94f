"""The master's web site: HTML pages (ui/), the JSON API (api.py), /metrics, and the
SlaveAPI under /slaveapi/."""

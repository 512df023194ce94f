"""The buildfarm master: a twistd process holding builders, slaves, schedulers and the web API."""

"""The status page, admin API, metrics and health endpoints of ``bridge run``."""

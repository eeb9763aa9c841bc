"""Metrics and logs: the Prometheus registry, structlog set-up, and warnings that are counted
and logged without a flood. Imports only the core and the configuration, so that every layer
above can report through it.
"""

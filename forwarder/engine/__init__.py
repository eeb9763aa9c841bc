"""The engine: the pipeline that wires the adapters to the core and runs it.

Delivery (senders, tries, parking in retry tiers), flow control, commits, lag, the limiter and
the service that runs it all under ``forwarder run``. It imports the core, the configuration,
telemetry, the ports and the adapters; nothing below imports it.
"""

"""The operations commands behind the CLI: dead letters (``dlq``), ``validate``, ``traffic``,
``personalize`` and ``demo``. Each takes parsed options and configuration from ``forwarder.cli``
and calls into the engine or the adapters.
"""

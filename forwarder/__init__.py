"""forwarder: Kafka clickstream events to Treasure Data's real-time ingest endpoints."""

__version__ = "0.1.0"

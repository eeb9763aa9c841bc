"""Personalization activation (design.md section 7): ask a personalization service about the
user of each accepted trigger event and publish the answers to a Kafka topic.

``Activation`` (``activation.py``) is the orchestrator the pipeline starts; one ``ServiceRunner``
(``runner.py``) per configured service owns its queue, cache, rate limit, health and tasks. The
decisions are pure (``forwarder.core``: ``latest_wins``, ``ttl_cache``, ``rate_reserve``,
``service_health``, ``activation_records``); the HTTP client is an adapter.
"""

from forwarder.engine.personalization.activation import Activation

__all__ = ["Activation"]

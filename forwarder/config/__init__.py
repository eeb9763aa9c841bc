"""Configuration: parsed and validated once at start-up into frozen dataclasses.

``load_config`` reads the TOML file, the ``FORWARDER_<SECTION>__<KEY>`` environment overrides and
the secrets, and returns a frozen ``Config`` or raises ``ConfigError`` naming the key and the fix.
The model lives in ``_model``, the reading in ``_loading``, the cross-field rules in ``_checks``;
every problem is collected and raised at once. Each key's meaning is its field's metadata, from
which ``reference`` renders docs/configuration.md and the JSON Schema of the file.

Not pydantic-settings (judged for issue 29): it has no ``VAR_FILE`` secrets, reads env lists as
JSON not ``a,b``, its messages carry no fix, and the cross-field rules with their fixes stay
hand-written anyway; it would also turn the frozen dataclasses into models and add ~0.4 s of
imports at start-up, for a loader that would shrink by little.
"""

from forwarder.config._loading import ENV_PREFIX, load_config
from forwarder.config._model import (
    MAX_BYTES_PER_EVENT,
    MAX_BYTES_PER_REQUEST,
    MAX_EVENTS_PER_REQUEST,
    POLICY_ACTIONS,
    REGIONS,
    REVOKE_COMMIT_MS,
    SESSION_TIMEOUT_MS,
    BatchConfig,
    Config,
    EndpointConfig,
    HealthConfig,
    KafkaConfig,
    LimitsConfig,
    OpsConfig,
    PersonalizationConfig,
    PersonalizationService,
    RegistryConfig,
    RetryConfig,
    SchemasConfig,
    Secret,
    redacted,
)

__all__ = [
    "ENV_PREFIX",
    "MAX_BYTES_PER_EVENT",
    "MAX_BYTES_PER_REQUEST",
    "MAX_EVENTS_PER_REQUEST",
    "POLICY_ACTIONS",
    "REGIONS",
    "REVOKE_COMMIT_MS",
    "SESSION_TIMEOUT_MS",
    "BatchConfig",
    "Config",
    "EndpointConfig",
    "HealthConfig",
    "KafkaConfig",
    "LimitsConfig",
    "OpsConfig",
    "PersonalizationConfig",
    "PersonalizationService",
    "RegistryConfig",
    "RetryConfig",
    "SchemasConfig",
    "Secret",
    "load_config",
    "redacted",
]

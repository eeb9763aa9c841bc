import ssl
from typing import Any

from forwarder.engine.service import unretrieved_connection_errors
from forwarder.telemetry.kafka_errors import KafkaErrors
from forwarder.telemetry.metrics import Metrics


class _Loop:
    def __init__(self) -> None:
        self.default: list[dict[str, Any]] = []

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.default.append(context)


def _counted(metrics: Metrics, error: str) -> float:
    value = metrics.registry.get_sample_value(
        "forwarder_kafka_errors_total", {"operation": "connection", "error": error}
    )
    return value or 0.0


def test_an_unretrieved_connection_error_is_counted_and_logged_without_a_traceback() -> None:
    metrics = Metrics()
    loop = _Loop()
    handle = unretrieved_connection_errors(KafkaErrors(metrics))
    future_message = "Future exception was never retrieved"
    handle(loop, {"message": future_message, "exception": ssl.SSLError(1, "bad certificate")})  # type: ignore[arg-type]
    assert _counted(metrics, "SSLError") == 1
    assert loop.default == []


def test_any_other_unhandled_exception_keeps_asyncios_report() -> None:
    metrics = Metrics()
    loop = _Loop()
    handle = unretrieved_connection_errors(KafkaErrors(metrics))
    bug = {"message": "Future exception was never retrieved", "exception": ValueError("a bug")}
    handle(loop, bug)  # type: ignore[arg-type]
    other = {"message": "Task was destroyed but it is pending!", "exception": OSError("x")}
    handle(loop, other)  # type: ignore[arg-type]
    assert loop.default == [bug, other]
    assert _counted(metrics, "OSError") == 0

import json
from pathlib import Path

import pytest

from forwarder.core.schemas import SchemaRegistry, default_schema_dir, validate_lines
from forwarder.errors import SchemaLoadError

SCHEMAS = default_schema_dir()
REGISTRY = SchemaRegistry.from_dirs([SCHEMAS])
EXAMPLES = {
    p.stem: json.loads(p.read_text()) for p in sorted((SCHEMAS / "examples").glob("*.json"))
}


def _cases(kind: str) -> list[object]:
    return [
        pytest.param(event_type, case, id=f"{event_type}-{index}")
        for event_type, examples in EXAMPLES.items()
        for index, case in enumerate(examples[kind])
    ]


def test_every_event_type_has_a_schema_and_examples() -> None:
    expected = [
        "add_to_cart",
        "identify",
        "page_view",
        "product_view",
        "purchase",
        "remove_from_cart",
        "search",
    ]
    assert REGISTRY.event_types == expected
    assert sorted(EXAMPLES) == expected


@pytest.mark.parametrize(("event_type", "event"), _cases("valid"))
def test_valid_examples_pass(event_type: str, event: dict[str, object]) -> None:
    assert event["event_type"] == event_type
    assert REGISTRY.validate(event) is None


@pytest.mark.parametrize(("event_type", "case"), _cases("invalid"))
def test_invalid_examples_fail_at_the_expected_path(
    event_type: str, case: dict[str, object]
) -> None:
    failure = REGISTRY.validate(case["event"])  # type: ignore[arg-type]
    assert failure is not None, case["why"]
    assert failure.reason == "schema_violation"
    assert failure.path == case["path"], (case["why"], failure.detail)
    assert failure.detail.startswith(case["path"] or "/")  # type: ignore[union-attr]


@pytest.mark.parametrize("event_type", [None, "page_vieww", 7])
def test_unknown_or_missing_event_type(event_type: object) -> None:
    event = dict(EXAMPLES["page_view"]["valid"][0], event_type=event_type)
    if event_type is None:
        del event["event_type"]
    failure = REGISTRY.validate(event)
    assert failure is not None
    assert failure.reason == "unknown_event_type"
    assert failure.path == "/event_type"


def test_user_directory_adds_and_overrides_types(tmp_path: Path) -> None:
    (tmp_path / "video_play.json").write_text(
        json.dumps(
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "allOf": [{"$ref": "common.json"}],
                "required": ["video_id"],
                "properties": {
                    "event_type": {"const": "video_play"},
                    "video_id": {"type": "string"},
                },
            }
        )
    )
    (tmp_path / "search.json").write_text(
        json.dumps(
            {"properties": {"event_type": {"const": "search"}}, "required": ["query", "locale"]}
        )
    )
    registry = SchemaRegistry.from_dirs([SCHEMAS, tmp_path])
    assert "video_play" in registry.event_types
    base = dict(EXAMPLES["page_view"]["valid"][0])
    assert registry.validate({**base, "event_type": "video_play", "video_id": "v1"}) is None
    missing_common = {k: v for k, v in base.items() if k != "timestamp"}
    failure = registry.validate({**missing_common, "event_type": "video_play", "video_id": "v1"})
    assert failure is not None
    search = EXAMPLES["search"]["valid"][0]
    assert registry.validate(search) is not None
    assert registry.validate({**search, "locale": "en"}) is None


def test_malformed_schema_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SchemaLoadError, match=r"broken\.json"):
        SchemaRegistry.from_dirs([SCHEMAS, tmp_path])


def test_invalid_schema_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "odd.json").write_text(
        json.dumps({"properties": {"event_type": {"const": "odd"}}, "type": "nonsense"})
    )
    with pytest.raises(SchemaLoadError, match="odd"):
        SchemaRegistry.from_dirs([SCHEMAS, tmp_path])


def test_validate_lines_reports_each_bad_line() -> None:
    good = json.dumps(EXAMPLES["search"]["valid"][0]).encode()
    bad = json.dumps(EXAMPLES["search"]["invalid"][0]["event"]).encode()
    repeated = good[:-1] + b', "query": "a", "query": "b"}\n'
    lines = [good, b"{oops", b"", b"[1]", bad, b"null", repeated]
    failures = list(validate_lines(lines, REGISTRY))
    assert [(f.line, f.reason) for f in failures] == [
        (2, "invalid_json"),
        (4, "not_an_object"),
        (5, "schema_violation"),
        (6, "not_an_object"),
        (7, "invalid_json"),
    ]
    assert failures[2].path == "/timestamp"
    assert failures[3].detail == "a JSON null, not an object"
    assert '"query"' in failures[4].detail


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (b'{"event_type": null}', "a JSON null"),
        (b'{"event_type": true}', "a JSON boolean"),
        (b'{"event_type": 1.5}', "a JSON number"),
        (b'{"event_type": {"a": null}}', "a JSON object"),
        (b'{"event_type": ["page_view"]}', "a JSON array"),
        (b'{"event_type": "nope"}', '"nope"'),
        (b'{"user_id": "u"}', "missing"),
    ],
)
def test_an_unknown_event_type_is_named_in_json_terms(line: bytes, shown: str) -> None:
    (failure,) = validate_lines([line], REGISTRY)
    assert failure.reason == "unknown_event_type"
    assert failure.detail.startswith(f"/event_type: {shown} is not one of add_to_cart, ")
    for python_name in ("None", "True", "NoneType", "dict", "'"):
        assert python_name not in failure.detail

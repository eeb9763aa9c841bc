"""docs/configuration.md and deploy/forwarder.schema.json are what the config model renders,
and the repository's example configurations pass the schema."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from forwarder.config import Config
from forwarder.config.reference import (
    REFERENCE_PATH,
    SCHEMA_PATH,
    render_reference,
    render_schema,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("path", "render", "command"),
    [
        (REFERENCE_PATH, render_reference, f"forwarder config reference -o {REFERENCE_PATH}"),
        (SCHEMA_PATH, render_schema, f"forwarder config schema -o {SCHEMA_PATH}"),
    ],
)
def test_the_committed_file_is_what_the_model_renders(
    path: str, render: typing.Callable[[], str], command: str
) -> None:
    committed = (ROOT / path).read_text(encoding="utf-8")
    assert committed == render(), (
        f"{path} differs from the config model (forwarder/config/_model.py): "
        f"run `{command}` at the repository root and commit the result"
    )


def _fields(cls: type[Any], prefix: str) -> typing.Iterator[tuple[str, dataclasses.Field[Any]]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f"{prefix}{f.name}", f
        hint = hints[f.name]
        if typing.get_origin(hint) is tuple:
            hint = typing.get_args(hint)[0]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            yield from _fields(hint, f"{prefix}{f.name}.")


def test_every_key_has_a_one_line_meaning() -> None:
    keys = dict(_fields(Config, ""))
    assert len(keys) > 90
    missing = [k for k, f in keys.items() if not f.metadata.get("doc")]
    assert not missing, f"keys without metadata doc: {missing}"
    assert not [k for k, f in keys.items() if "\n" in f.metadata["doc"]]


def _validator() -> Any:
    return jsonschema_rs.validator_for(json.loads((ROOT / SCHEMA_PATH).read_text()))


def _configmap_toml() -> str:
    docs = yaml.safe_load_all((ROOT / "deploy/kubernetes/configmap.yaml").read_text())
    (text,) = [d["data"]["forwarder.toml"] for d in docs if d and d.get("kind") == "ConfigMap"]
    return str(text)


EXAMPLES = {
    "deploy/forwarder.toml": lambda: (ROOT / "deploy/forwarder.toml").read_text(),
    "deploy/compose/forwarder.toml": lambda: (ROOT / "deploy/compose/forwarder.toml").read_text(),
    "deploy/kubernetes/configmap.yaml": _configmap_toml,
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_the_example_configs_pass_the_schema(name: str) -> None:
    raw = tomllib.loads(EXAMPLES[name]())
    errors = [f"{list(e.instance_path)}: {e.message}" for e in _validator().iter_errors(raw)]
    assert not errors, errors


@pytest.mark.parametrize(
    "path", ["deploy/forwarder.toml", "deploy/compose/forwarder.toml"], ids=["image", "compose"]
)
def test_the_example_configs_name_the_schema_for_editors(path: str) -> None:
    first = (ROOT / path).read_text().splitlines()[0]
    assert first.startswith("#:schema ")
    schema = (ROOT / path).parent / first.removeprefix("#:schema ").strip()
    assert schema.resolve() == (ROOT / SCHEMA_PATH).resolve()


@pytest.mark.parametrize(
    "text",
    [
        '[limits]\nmax_in_flight = "lots"\n',  # neither an integer nor "adaptive"
        '[kafka]\nbootstrap_server = "x:9092"\n',  # unknown key
        "[kafak]\n",  # unknown section
        '[kafka]\nsasl_password = "hunter2"\n',  # a secret in the file
        '[kafka]\ntopics = "clickstream"\n',  # not a list
        '[ops]\nlog_level = "verbose"\n',  # not a choice
        '[policy]\n"500" = "explode"\n',
        '[routes]\npage_view = "nodot"\n',
        '[[personalization.services]]\nname = "x"\n',  # parent_segment_id, triggers missing
    ],
)
def test_a_wrong_type_or_unknown_key_fails_the_schema(text: str) -> None:
    assert not _validator().is_valid(tomllib.loads(text))


def test_the_schema_takes_adaptive_and_a_full_service() -> None:
    text = (
        '[limits]\nmax_in_flight = "adaptive"\n'
        '[policy]\n"400:3004" = "isolate"\ntransport = "retry"\n'
        "[[personalization.services]]\n"
        'name = "recs"\nparent_segment_id = "1"\ntriggers = ["product_view"]\n'
        'context = { page_url = "page_url" }\nfallback_outputs = { products = ["a"] }\n'
    )
    assert _validator().is_valid(tomllib.loads(text))


def test_each_secret_comes_from_the_variable_the_reference_names() -> None:
    from forwarder.config import load_config

    base = {
        "TD_API_KEY": "1/key",
        "TD_WP13N_TOKEN": "1/2/t",
        "FORWARDER_REGISTRY__URL": "https://registry.example",
        "FORWARDER_REGISTRY__USERNAME": "user",
        "FORWARDER_REGISTRY__PASSWORD": "pass",
    }
    secrets = [(k, f) for k, f in _fields(Config, "") if "env" in f.metadata]
    assert len(secrets) == 7
    for key, f in secrets:
        config = load_config(None, {**base, f.metadata["env"]: "s3cret"})
        section, name = key.split(".")
        assert getattr(getattr(config, section), name).reveal() == "s3cret", key


def test_the_commands_print_what_the_model_renders_or_write_it_with_output(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from forwarder.cli import app

    runner = CliRunner()
    printed = runner.invoke(app, ["config", "reference"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == render_reference()
    target = tmp_path / "schema.json"
    written = runner.invoke(app, ["config", "schema", "-o", str(target)])
    assert written.exit_code == 0, written.output
    assert target.read_text(encoding="utf-8") == render_schema()

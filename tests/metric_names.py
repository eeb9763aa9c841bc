"""The metric names a PromQL query selects, and the names the forwarder's ``/metrics`` can expose.

The alerts (``tests/unit/test_deploy.py``) and the Grafana dashboard (``test_dashboard.py``) are
checked against the code with these, so neither can name a metric the code does not export.
"""

from __future__ import annotations

import functools

import promql_parser

from forwarder.telemetry.metrics import Metrics

# What prometheus_client appends to a family's name in the exposition, by the family's type.
_EXPOSITION_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


# The parser's match operators are not hashable: a list of pairs, not a dict.
_OPERATORS = [
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
]


def _operator(op: object) -> str:
    (text,) = [text for known, text in _OPERATORS if op == known]
    return text


def promql_selectors(expr: str) -> list[tuple[str | None, list[tuple[str, str, str]]]]:
    """(metric name, [(label, operator, value)]) of each vector selector in a PromQL expression.

    ``ValueError`` when the expression is not PromQL.
    """
    selectors = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [(m.name, _operator(m.op), m.value) for m in node.matchers.matchers]
            selectors.append((node.name or None, matchers))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return selectors


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects; ``ValueError`` when it is not PromQL.

    A name given as ``{__name__="..."}`` counts; a ``__name__`` regex cannot be checked, so it is
    refused.
    """
    names = set()
    for name, matchers in promql_selectors(expr):
        if name:
            names.add(name)
        for label, operator, value in matchers:
            if label == "__name__":
                if operator != "=":
                    raise ValueError(f"a __name__ regex cannot be checked: {expr}")
                names.add(value)
    return names


@functools.cache
def exposed_metric_names() -> frozenset[str]:
    """Every series name ``/metrics`` can expose, with the exposition suffixes.

    One ``Metrics()`` registers every collector the pipeline uses (the ops server serves that
    registry), labelled ones included, so this needs no pipeline.
    """
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names |= {family.name + suffix for suffix in _EXPOSITION_SUFFIXES.get(family.type, ("",))}
    return frozenset(names)

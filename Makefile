# The two Quick-start commands of the README, and the steps they are made of.
.PHONY: setup demo test lint unit integration bench

setup:
	./scripts/bootstrap.sh

demo: setup
	.venv/bin/forwarder demo

lint: setup
	.venv/bin/ruff check forwarder tests bench
	.venv/bin/ruff format --check forwarder tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports

unit: setup
	.venv/bin/pytest tests/unit

integration: setup
	.venv/bin/pytest tests/integration

test: lint
	.venv/bin/pytest

# The headline figures (docs/performance.md); the other benchmarks are run one by one.
bench: setup
	.venv/bin/python bench/bench_forwarder.py --replicas 2

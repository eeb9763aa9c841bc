#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine: a virtualenv with the package and
# its dev tools, the Apache Kafka jars and the Apicurio schema registry for the tests (cached
# outside the repo, ~/.cache/forwarder).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
command -v java >/dev/null || { echo "java (17+) is needed for the local Kafka broker" >&2; exit 1; }
command -v mvn >/dev/null || { echo "mvn is needed to fetch the Kafka jars" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    touch "$stamp"
fi
.venv/bin/python -m forwarder.localkafka fetch

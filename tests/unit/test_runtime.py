import ctypes.util
import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forwarder.engine.runtime import (
    MIDDLE_EVERY,
    allocator,
    allocator_of,
    python_allocator,
    tune_collector,
)


def test_tuning_the_collector_raises_only_the_middle_generation_threshold() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_collector()
        assert gc.get_threshold() == (700, MIDDLE_EVERY, 10)
    finally:
        gc.set_threshold(*before)


JEMALLOC_MAPS = """\
55d0c3a4e000-55d0c3a4f000 r--p 00000000 fd:01 123 /usr/bin/python3.11
7f1e2a000000-7f1e2a022000 r--p 00000000 fd:01 456 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
7f1e2b000000-7f1e2b028000 r--p 00000000 fd:01 789 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd5e1f0000-7ffd5e211000 rw-p 00000000 00:00 0                          [stack]
"""


def test_allocator_of_names_a_preloaded_jemalloc() -> None:
    assert allocator_of(JEMALLOC_MAPS) == "jemalloc"


def test_allocator_of_names_mimalloc_and_tcmalloc_by_their_libraries() -> None:
    assert allocator_of("7f00-7f01 r-xp 0 fd:01 1 /usr/lib/libmimalloc.so.2.0\n") == "mimalloc"
    assert allocator_of("7f00-7f01 r-xp 0 fd:01 1 /lib/libtcmalloc_minimal.so.4\n") == "tcmalloc"


def test_allocator_of_a_map_without_another_malloc_is_the_system_one() -> None:
    maps = JEMALLOC_MAPS.replace("libjemalloc.so.2", "libssl.so.3")
    assert allocator_of(maps) == "system"
    # A path that merely contains the name in a directory does not count.
    assert allocator_of("7f00-7f01 r-xp 0 fd:01 1 /opt/jemalloc/lib/libz.so.1\n") == "system"


def _allocator_in_child(env: dict[str, str]) -> str:
    code = "from forwarder.engine.runtime import allocator; print(allocator())"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_allocator_reads_this_process_map() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    assert _allocator_in_child(env) == "system"


@pytest.mark.skipif(
    ctypes.util.find_library("jemalloc") is None,
    reason="libjemalloc2 is not installed (the container image has it)",
)
def test_allocator_sees_jemalloc_preloaded_as_the_image_does() -> None:
    assert _allocator_in_child({**os.environ, "LD_PRELOAD": "libjemalloc.so.2"}) == "jemalloc"


def test_python_allocator_is_pymalloc_unless_pythonmalloc_names_another() -> None:
    assert python_allocator({}) == "pymalloc"
    assert python_allocator({"PYTHONMALLOC": ""}) == "pymalloc"
    assert python_allocator({"PYTHONMALLOC": "malloc"}) == "malloc"


def test_allocator_without_a_readable_map_says_unknown_and_why(tmp_path: Path) -> None:
    found = allocator(str(tmp_path / "no-such-maps"))
    assert found == "unknown (FileNotFoundError: No such file or directory)"

"""The OAUTHBEARER token file: read when it changes, a clear error naming the key otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forwarder.adapters.kafka_oauth import FileTokenProvider, OAuthTokenError


async def test_token_file_is_read_again_when_a_sidecar_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first.token.\n")
    provider = FileTokenProvider(str(path))
    assert await provider.token() == "first.token."
    path.write_text("second.token.\n")
    # A refresh within the same clock tick must still be seen: move the mtime explicitly.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert await provider.token() == "second.token."


async def test_a_missing_or_empty_token_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "token"
    with pytest.raises(OAuthTokenError, match=r"kafka\.oauth_token_file: cannot read"):
        await FileTokenProvider(str(path)).token()
    path.write_text("\n")
    with pytest.raises(OAuthTokenError, match="is empty"):
        await FileTokenProvider(str(path)).token()

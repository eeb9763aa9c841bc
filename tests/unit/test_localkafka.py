"""The local Kafka launcher's pure parts."""

from __future__ import annotations

import base64

from forwarder.localkafka._cluster import _cluster_id


def test_a_cluster_id_never_starts_with_a_dash_the_storage_tool_would_read_as_an_option() -> None:
    # One random id in 64 starts with "-"; 2,000 draws miss that with odds of about 1e-14.
    ids = [_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)

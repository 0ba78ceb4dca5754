"""What the service modules decide without starting anything."""

from __future__ import annotations

import base64
import uuid

from infra.services import kafka


def test_a_kraft_cluster_id_never_starts_with_a_dash(monkeypatch):
    # 0xF8 encodes to "-" in base64url: the storage tool would take such an id for an option
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))
    cluster_id = kafka._random_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")
    assert len(cluster_id) == 22

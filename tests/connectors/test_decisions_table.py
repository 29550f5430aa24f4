"""One decisions table for the calls store and the outbox, and the upgrade of databases made
with the old two-table layout (a stored call's decisions lived in a second table)."""

from __future__ import annotations

import base64
import json

from sqlalchemy import inspect, select, text

from callsense.connectors.calls_store import CallStore
from callsense.connectors.outbox import Outbox
from callsense.connectors.outbox_rows import decision_id, decisions_table, outbox_table
from callsense.connectors.storage import create_schema, make_engine

from .helpers import decision, endpoint

OLD_LAYOUT = [
    """CREATE TABLE callsense_decisions (id VARCHAR(40) PRIMARY KEY, call_id VARCHAR(255)
    NOT NULL, policy VARCHAR(255) NOT NULL, rule VARCHAR(255) NOT NULL, action VARCHAR(32)
    NOT NULL, at VARCHAR(64) NOT NULL, policy_hash VARCHAR(128) NOT NULL, body TEXT NOT NULL,
    created_at FLOAT NOT NULL)""",
    """CREATE TABLE callsense_calls (id VARCHAR(128) PRIMARY KEY, status VARCHAR(16) NOT NULL,
    kind VARCHAR(16) NOT NULL, created_at FLOAT NOT NULL)""",
    """CREATE TABLE callsense_call_decisions (call_id VARCHAR(128) NOT NULL, seq INTEGER NOT
    NULL, rule VARCHAR(255) NOT NULL, action VARCHAR(32) NOT NULL, at FLOAT NOT NULL, body
    TEXT NOT NULL, PRIMARY KEY (call_id, seq))""",
]


def test_store_and_outbox_share_one_row_per_decision(db_url: str) -> None:
    engine = make_engine(db_url)
    store, outbox = CallStore(engine), Outbox(engine)
    store.create("c1", kind="live", status="running")
    first, second = decision(1, call_id="c1"), decision(2, call_id="c1", action="tag")
    store.add_decisions("c1", [first])
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    outbox.enqueue(first, [endpoint("http://127.0.0.1:9/h", secret)])
    store.add_decisions("c1", [second])
    with engine.connect() as conn:
        rows = conn.execute(select(decisions_table.c.id, decisions_table.c.seq)).all()
        messages = conn.execute(select(outbox_table.c.decision_id)).scalars().all()
    assert sorted(rows, key=lambda r: r.seq) == [
        (decision_id(first), 0),
        (decision_id(second), 1),
    ]
    assert messages == [decision_id(first)]
    assert [d["rule"] for d in store.decisions("c1")] == [first.rule, second.rule]
    engine.dispose()


def test_an_old_database_is_upgraded_once_keeping_every_decision(db_url: str) -> None:
    engine = make_engine(db_url)
    old = [decision(i, call_id="c-old") for i in range(3)]
    with engine.begin() as conn:
        for statement in OLD_LAYOUT:
            conn.execute(text(statement))
        conn.execute(text("INSERT INTO callsense_calls VALUES ('c-old', 'done', 'audio', 1.0)"))
        for seq, d in enumerate(old):
            conn.execute(
                text("INSERT INTO callsense_call_decisions VALUES (:c, :s, :r, :a, :t, :b)"),
                {"c": "c-old", "s": seq, "r": d.rule, "a": d.action, "t": d.at,
                 "b": json.dumps(d.to_dict())},
            )  # fmt: skip
        # the first one had also gone to the outbox: its row exists, without a place
        conn.execute(
            text(
                "INSERT INTO callsense_decisions VALUES (:i, 'c-old', 'default', :r, 'escalate',"
                " '12.5', '3f2a9c0d1e', :b, 1.0)"
            ),
            {"i": decision_id(old[0]), "r": old[0].rule, "b": json.dumps(old[0].to_dict())},
        )
    for _ in range(2):  # idempotent
        create_schema(engine)
    assert "callsense_call_decisions" not in inspect(engine).get_table_names()
    assert CallStore(engine).decisions("c-old") == [d.to_dict() for d in old]
    with engine.connect() as conn:
        assert (
            conn.execute(select(decisions_table.c.id)).scalars().all().count(decision_id(old[0]))
            == 1
        )
    engine.dispose()

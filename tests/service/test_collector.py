"""The service keeps the garbage collector's passes short: what it loads at start (models,
flow, every imported module) is frozen out of the collector while it serves, so a burst of
short-lived objects (hundreds of upgrades at once) does not make a full pass walk them all
on the event loop's thread (issue 19; figures in bench/README.md, hostile.py)."""

from __future__ import annotations

import gc
from pathlib import Path

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.service_settings import ServiceSettings
from callsense.pipeline.config import CacheConfig
from tests.service.server import running, wait_ready


def test_what_the_service_loaded_is_frozen_while_it_serves(tmp_path: Path) -> None:
    app = create_app(
        AppConfig(cache=CacheConfig(enabled=False)),
        db_url=f"sqlite:///{tmp_path}/db.sqlite",
        load_models=False,
        settings=ServiceSettings(data_dir=tmp_path / "data", scheduler=False),
    )
    with running(app) as url:
        wait_ready(url)
        assert gc.get_freeze_count() > 10_000
        flow = app.state.runtime.flow  # loaded at start: a pass does not walk it
        assert gc.is_tracked(flow) and not any(o is flow for o in gc.get_objects())
    assert gc.get_freeze_count() == 0  # stopped: a process that goes on collects them again

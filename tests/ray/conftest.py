"""Ray test plumbing: loopback-only Ray, one local cluster per module, workers see tests/.

``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` must be set before ``import ray`` (Ray reads it at
import): it makes Ray bind to 127.0.0.1 instead of the external interface.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import ROOT

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # loopback-only test clusters
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray workers start from the raylet's environment: let them import tests.ray.helpers
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)

import ray


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ray: starts a real local Ray cluster (slow start-up)")


def listening_outside_loopback() -> list[str]:
    """Lines of ``ss -ltnp`` for Ray processes bound to a non-loopback address."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=False).stdout
    bad = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 4 or "users:" not in line:
            continue
        local = parts[3]
        host = local.rsplit(":", 1)[0].strip("[]")
        loopback = host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1", "localhost")
        if not loopback and ("ray" in line or "raylet" in line or "gcs_server" in line):
            bad.append(line)
    return bad


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory):
    """A real Ray on this machine for the module: 2 CPUs, no dashboard, loopback only.

    Yields the counter file the test recognizers append to: workers inherit the raylet's
    environment, fixed here when Ray starts, so the file is chosen now.
    """
    from tests.ray import helpers

    counter = tmp_path_factory.mktemp("ray-counter") / "passes.txt"
    os.environ[helpers.COUNTER_ENV] = str(counter)
    os.environ[helpers.DELAY_ENV] = "0.2"
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        namespace="callsense-test",
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        yield counter
    finally:
        os.environ.pop(helpers.COUNTER_ENV, None)
        os.environ.pop(helpers.DELAY_ENV, None)
        from ray import serve

        try:
            serve.shutdown()
        finally:
            ray.shutdown()

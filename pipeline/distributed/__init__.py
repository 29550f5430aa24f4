"""Running callsense on a Ray cluster (the ``callsense[ray]`` extra).

``config`` loads ``ray.yaml`` without Ray installed; ``serve_recognizer`` (the model tier
and the gateways' ``RemoteRecognizer``) and ``archive`` (Ray Data batch analysis) import
Ray. ``admission`` is the gateways' call limit and drain, usable without Ray.
"""

from callsense.pipeline.distributed.config import RayConfig, load_ray_config

__all__ = ["RayConfig", "load_ray_config"]

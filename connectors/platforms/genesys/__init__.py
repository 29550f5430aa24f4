"""Genesys Cloud: AudioHook in (``audiohook``: the stream protocol and its route, with
``signature``: the connection's HTTP message signature), participant attributes out
(``routing``)."""

from callsense.connectors.platforms.genesys.audiohook import ROLES, AudioHook, router
from callsense.connectors.platforms.genesys.routing import GenesysAdapter, GenesysTarget

__all__ = ["ROLES", "AudioHook", "GenesysAdapter", "GenesysTarget", "router"]

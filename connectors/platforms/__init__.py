"""Contact-center platforms, one module each, holding everything callsense does with it:
its live stream protocol (a ``StreamParser`` and its WebSocket route, run by
``connectors.live.connection.serve``) and its routing target and adapter (which carry out
``route`` decisions through the outbox).

- ``twilio``: Media Streams in, the Calls API to move a call.
- ``genesys``: AudioHook in, participant attributes for the call's flow.
- ``amazon_connect``: contact attributes (its audio comes through Kinesis, not here).
- ``http``: a generic routing target (the decision as JSON to a URL).

A new platform is one module here, a line in ``connectors.routing_config`` (its target
kind) and, when it streams audio, its router in ``connectors.app``.
"""

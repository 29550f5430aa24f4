"""Live calls over WebSockets: the one connection loop (``connection``), the call's session
(``session``) and callsense's own ``/v1/stream`` protocol (``stream``). The platforms'
protocols (Twilio Media Streams, Genesys AudioHook) live with their routing adapters in
``connectors.platforms``; ``connectors.app`` includes every route.
"""

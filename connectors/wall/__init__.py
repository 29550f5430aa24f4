"""The supervisor wall: every live call in progress and the alerts its decisions raise.

``hub`` (what live sessions publish to and wall pages subscribe to), ``board`` (one call's
running figures), ``alerts`` (stored alerts and their acknowledgements), ``routes`` (the
REST routes and ``WS /v1/wall``). The page is ``connectors/web/static/wall.js``.
"""

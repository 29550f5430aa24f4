"""The HTTP API's routers, one per resource; ``connectors.app`` includes them."""

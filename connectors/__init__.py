"""callsense's edges to the outside world: CLI, HTTP/WebSocket API, webhooks, storage."""

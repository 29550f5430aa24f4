"""callsense's policy engine: YAML escalation policies compiled onto durable-rules.

Depends on nothing else of callsense: it consumes ``Observation`` records and emits
``Decision`` records.
"""

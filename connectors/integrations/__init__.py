"""callsense inside voice-agent frameworks: Pipecat processors and LiveKit Agents STT.

Each module imports its framework (an optional extra: ``callsense[pipecat]``,
``callsense[livekit]``); this package imports neither, so the rest of callsense never needs
them.
"""

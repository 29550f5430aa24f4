"""callsense's in-process engine: audio -> VAD -> SenseVoice -> rules -> NLU -> dialogue -> TTS.

Knows nothing of HTTP, databases or the CLI; those live in ``connectors``.
"""

"""The small core every part of callsense shares and nothing of it depends on: the error
tree (``errors``), YAML loading with file:line (``yamlsource``), SenseVoice's one vocabulary
(``vocab``), its rich-text format (``richtext``) and the utterance record every edge speaks
(``wire``). ``rules`` imports only this."""

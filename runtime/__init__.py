"""Galvana's runtime: supervised actors, the message codec, the event bus, the stores,
the daemon's host and the API with its clients.

Import what you need from its module (``runtime.supervisor``, ``runtime.messages``,
...): this package re-exports nothing, so importing one piece (``runtime.messages`` in
the FEniCSx worker's parent, say) never pulls in the others. The shared vocabulary that
``physics`` and ``hal`` may use (messages, codec, waveforms, sample flags, topics,
constants, errors, documents) stands on itself; see ARCHITECTURE.md.
"""

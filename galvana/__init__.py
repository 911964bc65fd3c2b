"""The composition root: the ``galvana`` command and the daemon's assembly.

Everything that needs several of Galvana's packages at once is put together here, on
top of them all: the command table (:mod:`galvana.cli`, the console script), the
daemon's actor tree (:mod:`galvana.daemon`), the demo, and the commands that need the
actors, the instruments and the physics together (``instrument``, ``import``,
``compare``, ``calibrate``, ``export``, ``schema``). Nothing in ``runtime``, ``actors``,
``physics``, ``hal``, ``twins``, ``tui`` or ``bench`` imports this package
(tests/test_dependency_rule.py).
"""

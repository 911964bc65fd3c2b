"""``galvana schema DOCUMENT``: the JSON Schema (draft 2020-12) of a YAML document.

``scenario`` (a physics scenario), ``twin`` (a twin spec), ``daemon`` (the daemon's
``--config`` file) and ``mapping`` (``galvana import --mapping``'s column mapping).
Each schema is made from the structs that read the document (:mod:`runtime.schema`), so
it says what the reader accepts: keys, kinds, ranges in SI, strings with units.
Rules that span keys (the species a mechanism needs, a prior that fits its parameter)
are the reader's alone.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

__all__ = ["DOCUMENTS", "configure", "run", "schema_of"]


def _scenario() -> dict[str, Any]:
    from physics.scenario import scenario_schema  # noqa: PLC0415 - each loads what it needs

    return scenario_schema()


def _twin() -> dict[str, Any]:
    from twins.spec import twin_spec_schema  # noqa: PLC0415

    return twin_spec_schema()


def _daemon() -> dict[str, Any]:
    from runtime.daemon import config_schema  # noqa: PLC0415

    return config_schema()


def _mapping() -> dict[str, Any]:
    from hal.files.table import ColumnMapDocument  # noqa: PLC0415
    from runtime.schema import json_schema  # noqa: PLC0415

    return json_schema(ColumnMapDocument, title="Galvana import column mapping")


DOCUMENTS: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "scenario": (_scenario, "a physics scenario (galvana simulate, a twin spec's model)"),
    "twin": (_twin, "a twin spec (galvana run start)"),
    "daemon": (_daemon, "the daemon's configuration (galvana daemon --config)"),
    "mapping": (_mapping, "a plain table's column mapping (galvana import --mapping)"),
}
"""Each document: how its schema is made, and what it is."""


def schema_of(document: str) -> dict[str, Any]:
    """The JSON Schema of ``document`` (a name of :data:`DOCUMENTS`)."""
    return DOCUMENTS[document][0]()


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``galvana schema``."""
    parser.add_argument(
        "document",
        choices=list(DOCUMENTS),
        help="; ".join(f"{name}: {what}" for name, (_, what) in DOCUMENTS.items()),
    )


def run(args: argparse.Namespace) -> int:
    """Print the schema as JSON."""
    print(json.dumps(schema_of(args.document), indent=2))
    return 0

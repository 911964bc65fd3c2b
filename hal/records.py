"""The sample record of Galvana's SCPI dialect, shared by the simulator and the driver.

``FETCh:NEW?`` answers with an IEEE 488.2 definite-length block (``#<d><len><data>``)
whose data are records of 29 bytes, little-endian, no padding: ``u4`` sample number
(from 1 in each acquisition), ``f8`` t (s), ``f8`` E (V), ``f8`` I (A), ``u1`` flags
(:class:`runtime.sample_flags.Flag`). Records are read and written as whole numpy arrays.

>>> RECORD.itemsize
29
>>> ieee_block(b"abc")
b'#13abc'
"""

from __future__ import annotations

import numpy as np

__all__ = ["RECORD", "ieee_block"]

RECORD = np.dtype(
    [("n", "<u4"), ("t", "<f8"), ("E", "<f8"), ("I", "<f8"), ("flags", "u1")], align=False
)
"""One sample on the wire (see the module docstring)."""


def ieee_block(payload: bytes) -> bytes:
    """An IEEE 488.2 definite-length block: ``#<digits of len><len><payload>``."""
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload

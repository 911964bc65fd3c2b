"""Child processes for the event-store tests: a crash-test writer, a disk-full writer, a reader.

Run as ``python _store_child.py MODE STORE_PATH [ARGS]``. Output is one line per
fact, flushed at once, so a parent that kills the child still has every line the
child finished writing.
"""

from __future__ import annotations

import collections
import random
import resource
import signal
import sys
import zlib
from pathlib import Path

from runtime.errors import EventStoreError
from runtime.event_store import AppendFuture, EventStore

STREAMS = ("run-a", "run-b", "system")


def _say(line: object) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def event_bytes(stream: str, seq: int) -> bytes:
    """The one value event ``seq`` of ``stream`` may hold: derivable, mixed size, checksummed.

    Layout: header ``<stream>:<seq>:<length>|``, a payload derived from the
    header, then the CRC-32 of everything before it (4 bytes, big-endian).
    """
    h = zlib.crc32(f"{stream}/{seq}".encode())
    bucket = h % 100
    if bucket < 90:
        length = 16 + h % 500
    elif bucket < 99:
        length = 512 + h % 16_000
    else:
        length = 16_384 + h % 48_000  # many overflow pages
    header = f"{stream}:{seq}:{length}|".encode()
    payload = (header * (length // len(header) + 1))[:length]
    body = header + payload
    return body + zlib.crc32(body).to_bytes(4, "big")


def crash_writer(path: Path, seed: int) -> None:
    """Append forever; print ``<stream> <seq>`` for every acknowledged (durable) event."""
    rng = random.Random(seed)
    out = sys.stdout
    # A small map so that kills also land in the middle of map growth.
    store = EventStore(path, initial_map_size=256 * 1024, max_delay_s=0.001)
    next_seq = {stream: store.last_seq(stream) + 1 for stream in STREAMS}
    out.write("ready\n")
    out.flush()
    window: collections.deque[tuple[str, int, AppendFuture[int] | AppendFuture[range]]] = (
        collections.deque()
    )
    while True:
        stream = rng.choice(STREAMS)
        first = next_seq[stream]
        future: AppendFuture[int] | AppendFuture[range]
        if rng.random() < 0.1:
            count = rng.randint(2, 20)
            future = store.append_many(
                stream, [event_bytes(stream, first + i) for i in range(count)]
            )
        else:
            count = 1
            future = store.append(stream, event_bytes(stream, first))
        next_seq[stream] = first + count
        window.append((stream, first, future))
        lines: list[str] = []
        while window and (len(window) > 64 or window[0][2].done()):
            stream, first, future = window.popleft()
            result = future.result()
            seqs = result if isinstance(result, range) else range(result, result + 1)
            if seqs.start != first:
                raise SystemExit(f"{stream}: expected seq {first}, store gave {seqs.start}")
            lines.extend(f"{stream} {seq}\n" for seq in seqs)
        if lines:
            out.write("".join(lines))
            out.flush()


def disk_full_writer(path: Path, limit: int) -> None:
    """Append batches of 20 under a file-size limit until one fails; report what happened."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG/short writes, not death
    store = EventStore(path, initial_map_size=64 * 1024 * 1024)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    seq = 1
    while True:
        future = store.append_many("run", [event_bytes("run", seq + i) for i in range(20)])
        try:
            done = future.result()
        except EventStoreError as exc:
            _say(f"failed {exc}")
            break
        _say(f"acked {done.start} {done.stop - 1}")
        seq = done.stop
    # What was committed must still be readable from the same store object.
    _say(f"last {store.last_seq('run')}")
    store.close()
    _say("done")


def reader(path: Path) -> None:
    """Serve commands from stdin: ``count STREAM``, ``wait STREAM AFTER``, ``quit``."""
    with EventStore(path, readonly=True) as store:
        _say("ready")
        for line in sys.stdin:
            command, *args = line.split()
            if command == "count":
                events = list(store.read(args[0]))
                good = all(data == event_bytes(args[0], seq) for seq, data in events)
                seqs_ok = [seq for seq, _ in events] == list(range(1, len(events) + 1))
                _say(f"{len(events)} {good and seqs_ok}")
            elif command == "wait":
                _say("waiting")  # the commit that follows this line must wake the wait
                last = store.wait_appended(args[0], int(args[1]), timeout=float(args[2]))
                _say(f"{last}")
            elif command == "map":
                _say(store.statistics().map_size)
            elif command == "quit":
                return


def main() -> None:
    mode, path = sys.argv[1], Path(sys.argv[2])
    if mode == "crash-writer":
        crash_writer(path, int(sys.argv[3]))
    elif mode == "disk-full":
        disk_full_writer(path, int(sys.argv[3]))
    elif mode == "reader":
        reader(path)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()

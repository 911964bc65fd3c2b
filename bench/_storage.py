"""Storage benchmarks: durable event appends (LMDB), field appends (zarr), and sample
batches through the recorder (bus -> event log -> zarr arrays).

Both functions only measure and report; they never assert on timings.
Figures are per second of wall-clock time, from the first append until the
last one is durable (events) or flushed to disk (fields).
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from runtime.event_bus import EventBus
from runtime.event_store import AppendFuture, EventStore
from runtime.field_store import FieldStore
from runtime.messages import RunCreated, SampleBatch, utc_now

__all__ = ["bench_event_store", "bench_recorder", "bench_zarr_append"]

_EVENT_BYTES = 200
_PRODUCERS = 4
_BATCH_EVENTS = 1000


def _individual_appends(store: EventStore, total: int) -> float:
    """Durable events/s with ``_PRODUCERS`` threads each calling ``append`` once per event."""
    per_thread = total // _PRODUCERS
    payload = bytes(range(256))[:_EVENT_BYTES]
    start_barrier = threading.Barrier(_PRODUCERS + 1)
    futures: list[list[AppendFuture[int]]] = [[] for _ in range(_PRODUCERS)]

    def produce(index: int) -> None:
        append = store.append
        stream = f"bench-{index}"
        mine = futures[index]
        start_barrier.wait()
        for _ in range(per_thread):
            mine.append(append(stream, payload))

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(_PRODUCERS)]
    for thread in threads:
        thread.start()
    start_barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    for mine in futures:
        for future in mine:
            future.result()
    elapsed = time.perf_counter() - started
    return per_thread * _PRODUCERS / elapsed


def _batched_appends(store: EventStore, total: int) -> float:
    """Durable events/s with two threads calling ``append_many`` with batches of 1,000."""
    batches = total // _BATCH_EVENTS // 2
    payload = bytes(range(256))[:_EVENT_BYTES]
    batch = [payload] * _BATCH_EVENTS
    start_barrier = threading.Barrier(3)
    futures: list[list[AppendFuture[range]]] = [[], []]

    def produce(index: int) -> None:
        stream = f"bench-batch-{index}"
        mine = futures[index]
        start_barrier.wait()
        for _ in range(batches):
            mine.append(store.append_many(stream, batch))

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    start_barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    for mine in futures:
        for future in mine:
            future.result()
    elapsed = time.perf_counter() - started
    return batches * 2 * _BATCH_EVENTS / elapsed


def bench_event_store(tmp_dir: Path, *, quick: bool) -> dict[str, float]:
    """Durable append throughput of :class:`~runtime.event_store.EventStore` (200-byte events).

    Keys:
        ``store_durable_events_per_s``: events/s acknowledged durable, with four
            threads each calling ``append`` per event (the headline; goal >= 100,000).
        ``store_batch_events_per_s``: events/s with ``append_many`` batches of 1,000.
        ``store_txns``: durable transactions (fsyncs) used by the individual appends.
        ``store_events_per_txn``: mean group-commit size of the individual appends.
        ``store_sync_latency_ms``: median latency of one ``append_sync``, in ms.
    """
    individual = 40_000 if quick else 400_000
    batched = 200_000 if quick else 2_000_000
    results: dict[str, float] = {}
    with EventStore(tmp_dir / "bench-events.lmdb") as store:
        # Warm-up: map growth and page allocation are not what is measured.
        store.append_many("warmup", [b"\0" * _EVENT_BYTES] * 20_000).result()
        before = store.statistics()
        results["store_durable_events_per_s"] = _individual_appends(store, individual)
        after = store.statistics()
        txns = after.transactions - before.transactions
        results["store_txns"] = float(txns)
        results["store_events_per_txn"] = (after.events_committed - before.events_committed) / max(
            txns, 1
        )
        results["store_batch_events_per_s"] = _batched_appends(store, batched)
        latencies = []
        for _ in range(20 if quick else 200):
            started = time.perf_counter()
            store.append_sync("latency", b"\0" * _EVENT_BYTES)
            latencies.append(time.perf_counter() - started)
        results["store_sync_latency_ms"] = statistics.median(latencies) * 1e3
    return results


def _sample_batch(
    start: int, n: int
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.uint8]
]:
    """A cyclic-voltammetry-like batch: times (s), potentials (V), currents (A), flags."""
    index = np.arange(start, start + n, dtype=np.float64)
    t = index * 1e-3
    phase = (t % 2.0) / 2.0
    E = np.where(phase < 0.5, -0.5 + 2.0 * phase, 1.5 - 2.0 * phase)
    rng = np.random.default_rng(start)
    current = 1e-6 * np.tanh(8 * E) + 1e-9 * rng.standard_normal(n)
    flags = (rng.random(n) < 0.001).astype(np.uint8)
    return t, E, current, flags


def bench_zarr_append(tmp_dir: Path, *, quick: bool) -> dict[str, float]:
    """Append throughput of :class:`~runtime.field_store.FieldStore`, in MB/s (1 MB = 1e6 bytes).

    Samples arrive in batches of 1,000 points (float64 t, E, I and uint8 flags)
    and a concentration profile (float64, 200 grid points) arrives once per 10
    samples, as a solver in lockstep would produce them. The batches are made
    before the clock starts (a pool of 50, cycled), so only storing is timed.

    Keys: ``zarr_append_mb_per_s`` (raw bytes appended per second, final flush
    included), ``zarr_rows_per_s`` (sample points per second) and
    ``zarr_compression_ratio`` (raw bytes / bytes on disk).
    """
    n_batches = 200 if quick else 2_000
    batch = 1_000
    grid = 200
    x = np.linspace(0.0, 1.0, grid)
    pool = []
    for k in range(50):
        t, E, current, flags = _sample_batch(k * batch, batch)
        profile = 1.0 - np.exp(-x[None, :] * (1.0 + t[::10, None]))
        pool.append((t, E, current, flags, profile))
    root = tmp_dir / "bench-fields"
    raw = 0
    started = time.perf_counter()
    with FieldStore(root).run("bench") as run:
        for name, dtype, units in (
            ("t", np.float64, "s"),
            ("E", np.float64, "V"),
            ("I", np.float64, "A"),
            ("flags", np.uint8, "1"),
        ):
            run.create(name, dtype=dtype, units=units, dims=("sample",))
        run.create("c_O", dtype=np.float64, tail_shape=(grid,), units="mol/m^3", dims=("step", "x"))
        for b in range(n_batches):
            t, E, current, flags, profile = pool[b % len(pool)]
            run.append("t", t)
            run.append("E", E)
            run.append("I", current)
            run.append("flags", flags)
            run.append("c_O", profile)
            raw += t.nbytes + E.nbytes + current.nbytes + flags.nbytes + profile.nbytes
    elapsed = time.perf_counter() - started
    stored = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {
        "zarr_append_mb_per_s": raw / elapsed / 1e6,
        "zarr_rows_per_s": n_batches * batch / elapsed,
        "zarr_compression_ratio": raw / max(stored, 1),
    }


_RECORDER_RUNS = 4
_RECORDER_BATCH = 10  # samples per batch: a potentiostat polled every 10 ms at 1 kHz


def bench_recorder(tmp_dir: Path, *, quick: bool) -> dict[str, float]:
    """Sample batches through the recorder: the bus, the event log (durable, group
    commit) and the run's zarr arrays, as the daemon records a run.

    Keys:
        ``recorder_samples_per_s``: samples/s recorded when 4 runs publish 10-sample
            batches as fast as they can, until the recorder's ``flush`` returns
            (everything durable and in the arrays).
        ``recorder_cpu_at_1khz``: CPU seconds per second of this process (recorder,
            LMDB writer, zarr, and the publishers) while 4 runs each publish 1 kHz of
            samples in 10-sample batches: the share of one core recording costs.
    """
    from actors.recorder import Recorder  # noqa: PLC0415 - bench sits above the actors

    fast_batches = 2_000 if quick else 20_000
    paced_s = 1.0 if quick else 4.0
    results: dict[str, float] = {}
    for phase in ("fast", "paced"):
        root = tmp_dir / f"bench-recorder-{phase}"
        store = EventStore(root / "events.lmdb")
        fields = FieldStore(root / "fields")
        bus = EventBus()
        recorder = Recorder.start(store, fields, bus)
        try:
            proxy = recorder.proxy()
            runs = [f"bench-{phase}-{k}" for k in range(_RECORDER_RUNS)]
            for run_id in runs:
                proxy.commit(f"run/{run_id}/created", RunCreated(run_id, utc_now(), {}, "")).get()
            pool = [_sample_batch(k * _RECORDER_BATCH, _RECORDER_BATCH) for k in range(100)]
            if phase == "fast":
                started = time.perf_counter()
                for b in range(fast_batches):
                    run_id = runs[b % len(runs)]
                    t, E, current, flags = pool[b % len(pool)]
                    bus.publish(
                        f"run/{run_id}/samples",
                        SampleBatch(run_id, b // len(runs), t, E, current, flags),
                        timeout=None,
                    )
                proxy.flush().get()
                elapsed = time.perf_counter() - started
                results["recorder_samples_per_s"] = fast_batches * _RECORDER_BATCH / elapsed
            else:
                period = _RECORDER_BATCH / 1000.0
                cpu0, wall0 = time.process_time(), time.perf_counter()
                due = wall0
                seq = 0
                while (now := time.perf_counter()) - wall0 < paced_s:
                    if now < due:
                        time.sleep(due - now)
                    t, E, current, flags = pool[seq % len(pool)]
                    for run_id in runs:
                        bus.publish(
                            f"run/{run_id}/samples", SampleBatch(run_id, seq, t, E, current, flags)
                        )
                    seq += 1
                    due += period
                proxy.flush().get()
                results["recorder_cpu_at_1khz"] = (time.process_time() - cpu0) / (
                    time.perf_counter() - wall0
                )
        finally:
            recorder.stop()
            store.close()
            fields.close()
    return results

"""The field store on real zarr v3 groups, read back with plain zarr."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from runtime.errors import FieldStoreError
from runtime.field_store import DEFAULT_CHUNK_BYTES, FieldStore, RunFields, check_arrays


def chunk_files(run: Path, name: str) -> list[Path]:
    return sorted(p for p in (run / name).rglob("*") if p.is_file() and p.name != "zarr.json")


@pytest.fixture
def fields(tmp_path: Path) -> FieldStore:
    return FieldStore(tmp_path / "fields")


def test_many_small_batches_read_back_with_plain_zarr(fields: FieldStore) -> None:
    rng = np.random.default_rng(7)
    t_all, e_all, flags_all = [], [], []
    with fields.run("cv-1", attrs={"scenario": "cv.yaml", "scan_rate_V_per_s": 0.1}) as run:
        run.create("t", dtype=np.float64, units="s", long_name="time", dims=("sample",))
        run.create("E", dtype=np.float64, units="V", long_name="potential", dims=("sample",))
        run.create("flags", dtype=np.uint8, units="1", dims=("sample",), attrs={"bit0": "clip"})
        for b in range(120):
            n = int(rng.integers(1, 200))
            t = np.arange(n) * 1e-3 + b
            E = rng.standard_normal(n)
            flags = rng.integers(0, 4, n).astype(np.uint8)
            run.append("t", t)
            run.append("E", E)
            run.append("flags", flags)
            t_all.append(t)
            e_all.append(E)
            flags_all.append(flags)
    group = zarr.open_group(fields.path_of("cv-1"), mode="r")
    assert dict(group.attrs) == {"scenario": "cv.yaml", "scan_rate_V_per_s": 0.1}
    assert sorted(name for name, _ in group.arrays()) == ["E", "flags", "t"]
    potential, times, flag_array = group["E"], group["t"], group["flags"]
    assert isinstance(potential, zarr.Array)
    assert isinstance(times, zarr.Array)
    assert isinstance(flag_array, zarr.Array)
    np.testing.assert_array_equal(potential[:], np.concatenate(e_all))
    np.testing.assert_array_equal(times[:], np.concatenate(t_all))
    np.testing.assert_array_equal(flag_array[:], np.concatenate(flags_all))
    assert potential.dtype == np.float64
    assert flag_array.dtype == np.uint8
    assert dict(potential.attrs) == {"units": "V", "long_name": "potential"}
    assert dict(flag_array.attrs) == {"units": "1", "long_name": "flags", "bit0": "clip"}
    assert potential.metadata.dimension_names == ("sample",)  # type: ignore[union-attr]
    # Chunked along time only, about 1 MiB per chunk, Blosc lz4 + shuffle, checksummed.
    assert potential.chunks == (DEFAULT_CHUNK_BYTES // 8,)
    assert flag_array.chunks == (DEFAULT_CHUNK_BYTES,)
    codec, checksum = potential.compressors
    assert isinstance(checksum, Crc32cCodec)
    assert isinstance(codec, BloscCodec)
    assert codec.cname.value == "lz4"
    assert codec.shuffle is not None
    assert codec.shuffle.value == "shuffle"


def test_small_appends_touch_no_chunk_or_metadata_until_a_chunk_is_full(
    fields: FieldStore,
) -> None:
    run = fields.run("r")
    run.create("I", dtype=np.float64, units="A", chunk_rows=100)
    metadata = run.path / "I" / "zarr.json"
    created = metadata.read_bytes()
    for i in range(9):
        run.append("I", np.full(10, float(i)))
    # 90 rows: still all in memory; neither chunks nor the shape on disk were written.
    assert chunk_files(run.path, "I") == []
    assert metadata.read_bytes() == created
    assert run.rows("I") == 90
    run.append("I", np.full(25, 9.0))  # crosses the boundary at 100
    assert len(chunk_files(run.path, "I")) == 1
    assert json.loads(metadata.read_bytes())["shape"] == [100]
    assert run.rows("I") == 115
    # Reads see buffered rows too, without writing them.
    assert run.read("I")[-15:].tolist() == [9.0] * 15
    assert len(chunk_files(run.path, "I")) == 1
    run.append("I", np.ones(250))  # two more whole chunks at once
    assert len(chunk_files(run.path, "I")) == 3
    assert json.loads(metadata.read_bytes())["shape"] == [300]
    run.flush()  # the partial tail (65 rows)
    assert len(chunk_files(run.path, "I")) == 4
    assert json.loads(metadata.read_bytes())["shape"] == [365]
    run.close()
    assert zarr.open_array(run.path / "I", mode="r").shape == (365,)


def test_read_slices_across_disk_and_buffer(fields: FieldStore) -> None:
    run = fields.run("r")
    run.create("x", dtype=np.int64, units="1", chunk_rows=8)
    for start in range(0, 30, 3):
        run.append("x", np.arange(start, start + 3))
    # 24 rows on disk, 6 in memory.
    assert run.read("x").tolist() == list(range(30))
    assert run.read("x", 20, 27).tolist() == list(range(20, 27))
    assert run.read("x", 25).tolist() == list(range(25, 30))
    assert run.read("x", -2).tolist() == [28, 29]
    assert run.read("x", 3, 5).tolist() == [3, 4]
    assert run.read("x", 40).tolist() == []
    assert run.read("x", 10, 5).shape == (0,)


def test_reopen_and_continue_appending(tmp_path: Path) -> None:
    root = tmp_path / "fields"
    with FieldStore(root) as store:
        run = store.run("r1")
        run.create("E", dtype=np.float64, units="V", chunk_rows=64)
        run.append("E", np.arange(100.0))  # one whole chunk + 36 rows flushed at close
    with FieldStore(root) as store:
        run = store.run("r1")
        assert run.arrays() == ["E"]
        assert run.rows("E") == 100
        spec = run.spec("E")
        assert (spec.units, spec.chunk_rows, spec.dtype) == ("V", 64, np.dtype(np.float64))
        # Creating it again with the same layout is allowed (a resumed recorder does that).
        assert run.create("E", dtype=np.float64, units="V") == spec
        run.append("E", np.arange(100.0, 250.0))
        run.append("E", 250.0)  # a single row, given as a scalar
    array = zarr.open_group(root / "r1.zarr", mode="r")["E"]
    assert isinstance(array, zarr.Array)
    np.testing.assert_array_equal(array[:], np.arange(251.0))
    assert FieldStore(root).runs() == ["r1"]


def test_profiles_over_time_as_a_2d_array(fields: FieldStore) -> None:
    grid = 50
    x = np.linspace(0, 1, grid)
    expected = []
    with fields.run("sim") as run:
        spec = run.create(
            "c_O",
            dtype=np.float64,
            tail_shape=(grid,),
            units="mol/m^3",
            long_name="concentration of O",
            dims=("step", "x"),
        )
        assert spec.chunk_rows == DEFAULT_CHUNK_BYTES // (8 * grid)
        for step in range(40):
            rows = np.exp(-x[None, :] / (1 + step + np.arange(3)[:, None]))
            run.append("c_O", rows)
            expected.append(rows)
        one = np.ones(grid)
        run.append("c_O", one)  # one row of shape (grid,)
        expected.append(one[None, :])
    array = zarr.open_group(fields.path_of("sim"), mode="r")["c_O"]
    assert isinstance(array, zarr.Array)
    assert array.shape == (121, grid)
    assert array.chunks == (spec.chunk_rows, grid)
    assert array.metadata.dimension_names == ("step", "x")  # type: ignore[union-attr]
    assert array.attrs["units"] == "mol/m^3"
    np.testing.assert_array_equal(array[:], np.concatenate(expected))


def test_safe_casts_are_accepted(fields: FieldStore) -> None:
    run = fields.run("r")
    run.create("E", dtype=np.float64, units="V")
    run.append("E", np.array([1, 2], dtype=np.int32))
    run.append("E", [3.5])
    run.append("E", np.array([4.0], dtype=">f8"))  # other byte order, same values
    assert run.read("E").tolist() == [1.0, 2.0, 3.5, 4.0]
    assert run.read("E").dtype == np.float64


def test_appended_data_is_copied(fields: FieldStore) -> None:
    run = fields.run("r")
    run.create("I", dtype=np.float64, units="A")
    buffer = np.zeros(4)
    run.append("I", buffer)
    buffer[:] = 7.0  # the caller reuses its sample buffer
    assert run.read("I").tolist() == [0.0] * 4


def test_run_attributes_and_one_object_per_run(fields: FieldStore) -> None:
    run = fields.run("r", attrs={"operator": "ada"})
    assert fields.run("r", attrs={"cell": "B3"}) is run
    run.update_attrs({"status": "completed"})
    assert run.attrs == {"operator": "ada", "cell": "B3", "status": "completed"}
    run.close()
    assert fields.run("r") is not run
    assert dict(zarr.open_group(fields.path_of("r"), mode="r").attrs)["status"] == "completed"


# -- errors ----------------------------------------------------------------------------


@pytest.fixture
def run(fields: FieldStore) -> RunFields:
    opened = fields.run("r")
    opened.create("E", dtype=np.float64, units="V")
    opened.create("flags", dtype=np.uint8, units="1")
    opened.create("c", dtype=np.float32, tail_shape=(5,), units="mol/m^3")
    return opened


def test_wrong_dtype_names_array_given_and_expected(run: RunFields) -> None:
    with pytest.raises(FieldStoreError, match=r"'flags'.*dtype float64, expected uint8"):
        run.append("flags", np.array([0.5]))
    with pytest.raises(FieldStoreError, match=r"'c'.*dtype float64, expected float32"):
        run.append("c", np.zeros((2, 5)))
    with pytest.raises(FieldStoreError, match="dtype <U1"):
        run.append("E", ["a"])
    assert run.rows("flags") == 0


def test_wrong_shape_names_array_given_and_expected(run: RunFields) -> None:
    with pytest.raises(FieldStoreError, match=r"'c'.*shape \(2, 4\), expected \(n, 5\)"):
        run.append("c", np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(FieldStoreError, match=r"'E'.*shape \(3, 2\), expected \(n,\)"):
        run.append("E", np.zeros((3, 2)))


def test_unknown_array_lists_the_known_ones(run: RunFields) -> None:
    with pytest.raises(FieldStoreError, match=r"no field array 'I' \(it has: 'E', 'c', 'flags'\)"):
        run.append("I", np.zeros(3))
    with pytest.raises(FieldStoreError, match="no field array"):
        run.read("I")


@pytest.mark.parametrize("name", ["", "a/b", "../x", ".hidden", "x" * 65, "sp ace", 3])
def test_bad_array_names(run: RunFields, name: object) -> None:
    with pytest.raises(FieldStoreError, match="field array name .* is not valid"):
        run.create(name, dtype=np.float64, units="V")  # type: ignore[arg-type]


@pytest.mark.parametrize("run_id", ["", "../up", "a/b", "-x", "r" * 129, None])
def test_bad_run_ids(fields: FieldStore, run_id: object) -> None:
    with pytest.raises(FieldStoreError, match="run id .* is not valid"):
        fields.run(run_id)  # type: ignore[arg-type]


def test_recreating_with_another_layout_is_refused(run: RunFields) -> None:
    with pytest.raises(
        FieldStoreError, match=r"'E'.*already exists with units 'V' \(asked for 'mV'\)"
    ):
        run.create("E", dtype=np.float64, units="mV")
    with pytest.raises(FieldStoreError, match=r"dtype 'float64' \(asked for 'float32'\)"):
        run.create("E", dtype=np.float32, units="V")
    with pytest.raises(FieldStoreError, match=r"tail_shape \(5,\) \(asked for \(6,\)\)"):
        run.create("c", dtype=np.float32, tail_shape=(6,), units="mol/m^3")


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"dtype": object, "units": "V"}, "dtype object is not supported"),
        ({"dtype": "U8", "units": "V"}, "is not supported"),
        ({"dtype": "no-such-type", "units": "V"}, "is not a numpy dtype"),
        ({"dtype": np.float64, "units": 3}, "units must be a string"),
        ({"dtype": np.float64, "units": "V", "tail_shape": (0,)}, "tail_shape"),
        ({"dtype": np.float64, "units": "V", "chunk_rows": 0}, "chunk_rows"),
        ({"dtype": np.float64, "units": "V", "dims": ("t", "x")}, "dims="),
        ({"dtype": np.float64, "units": "V", "attrs": {"units": "mV"}}, "may not set"),
    ],
)
def test_bad_create_arguments(run: RunFields, kwargs: dict[str, object], complaint: str) -> None:
    with pytest.raises(FieldStoreError, match=complaint):
        run.create("new", **kwargs)  # type: ignore[arg-type]
    assert "new" not in run.arrays()


def test_attributes_must_be_json(run: RunFields) -> None:
    with pytest.raises(FieldStoreError, match="JSON-serializable"):
        run.update_attrs({"when": object()})


def test_closed_run_says_so(run: RunFields) -> None:
    run.close()
    run.close()
    for call in (
        lambda: run.append("E", np.zeros(1)),
        lambda: run.read("E"),
        run.arrays,
        run.flush,
        lambda: run.attrs,
    ):
        with pytest.raises(FieldStoreError, match="are closed; call FieldStore.run"):
            call()


def test_field_store_root_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "fields").write_text("")
    with pytest.raises(FieldStoreError, match="not a directory"):
        FieldStore(tmp_path / "fields")


def test_the_partial_last_chunk_is_rewritten_whole_without_reading_it_back(
    fields: FieldStore,
) -> None:
    run = fields.run("r")
    run.create("I", dtype=np.float64, units="A", chunk_rows=100)
    run.append("I", np.arange(150.0))
    run.flush()  # a whole chunk and half of the next
    partial = run.path / "I" / "c" / "1"
    partial.write_bytes(b"damaged")  # were it read back, decoding would fail
    run.append("I", np.arange(150.0, 180.0))
    run.flush()
    np.testing.assert_array_equal(zarr.open_array(str(run.path / "I"))[:], np.arange(180.0))
    assert check_arrays(run.path, ["I"]) == 180


def test_chunks_of_zeros_are_stored_so_a_missing_one_means_damage(fields: FieldStore) -> None:
    run = fields.run("r")
    run.create("flags", dtype=np.uint8, units="1", chunk_rows=100)
    run.append("flags", np.zeros(250, np.uint8))
    run.flush()
    assert [p.name for p in chunk_files(run.path, "flags")] == ["0", "1", "2"]


def make_run(fields: FieldStore, rows: int = 250) -> RunFields:
    run = fields.run("r")
    for name in ("t", "I"):
        run.create(name, dtype=np.float64, units="1", chunk_rows=100, dims=("sample",))
        run.append(name, np.arange(float(rows)))
    run.flush()
    return run


def test_check_arrays_finds_missing_and_damaged_chunks(fields: FieldStore) -> None:
    run = make_run(fields)
    assert check_arrays(run.path, ["t", "I"]) == 250
    (run.path / "I" / "c" / "1").unlink()
    with pytest.raises(
        FieldStoreError, match=r"chunk c/1 of array 'I' \(rows 100\.\.199\) is missing"
    ):
        check_arrays(run.path, ["t", "I"])
    damaged = run.path / "t" / "c" / "0"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit: the checksum sees it
    damaged.write_bytes(bytes(data))
    with pytest.raises(FieldStoreError, match=r"chunk c/0 of array 't' cannot be read"):
        check_arrays(run.path, ["t", "I"])
    # Only the last chunk is decoded when asked to be quick (what the daemon does at start).
    with pytest.raises(FieldStoreError, match="is missing"):
        check_arrays(run.path, ["t", "I"], read_all=False)


def test_check_arrays_wants_arrays_of_one_length(fields: FieldStore) -> None:
    run = make_run(fields)
    run.append("t", np.zeros(3))
    run.flush()
    with pytest.raises(FieldStoreError, match="should be of one length, but hold t 253, I 250"):
        check_arrays(run.path, ["t", "I"])
    with pytest.raises(FieldStoreError, match="array 'E' is missing"):
        check_arrays(run.path, ["t", "E"])
    with pytest.raises(FieldStoreError, match="not a readable zarr group"):
        check_arrays(run.path / "nowhere", ["t"])


def test_remove_deletes_an_array_with_its_rows(fields: FieldStore) -> None:
    run = make_run(fields)
    run.remove("I")
    assert run.arrays() == ["t"]
    run.remove("I")  # absent: nothing to do
    assert fields.attrs_of("r") == {}
    assert fields.attrs_of("other") is None


def test_release_writes_and_forgets_then_reopens_from_disk(fields: FieldStore) -> None:
    run = make_run(fields)  # 250 rows: the last chunk (50 rows) is kept in memory
    run.append("t", np.arange(250.0, 260.0))
    run.release(["t"])
    assert zarr.open_array(str(run.path / "t")).shape == (260,)
    run.append("t", np.arange(260.0, 300.0))  # reopened from disk, its tail read back once
    run.flush()
    np.testing.assert_array_equal(zarr.open_array(str(run.path / "t"))[:], np.arange(300.0))


def test_module_example_runs() -> None:
    import runtime.field_store

    assert doctest.testmod(runtime.field_store).failed == 0

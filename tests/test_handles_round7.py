"""Values that only name state kept outside them (shared memory, a manager's proxies, shared ctypes, an mmap),
keyed by what they hold; global open handles (a file, an SQLite connection, a zip archive, an npz, a diskcache)
keyed by the files they read, or their results not stored where those files are not known; torch's readers
that read a file in C++ (torch.jit.load, torch.export.load); fsspec's in-memory file system."""

from __future__ import annotations

import mmap
import multiprocessing as mp
from collections.abc import Iterator
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import pytest
from conftest import RUNS_SETUP, Counter, run_kernel

from notebook_memo import MemoWarning, StorageWarning, memo


# -- values that only name shared state ------------------------------------------------------------------------
@pytest.fixture
def segment() -> Iterator[shared_memory.SharedMemory]:
    shm = shared_memory.SharedMemory(create=True, size=4)
    yield shm
    shm.close()
    shm.unlink()


def test_a_global_shared_memory_is_keyed_by_its_bytes(segment: shared_memory.SharedMemory, counter: Counter) -> None:
    segment.buf[:4] = b"AAAA"

    @memo
    def read() -> str:
        counter()
        return bytes(segment.buf[:4]).decode()

    assert read() == "AAAA"
    segment.buf[:4] = b"BBBB"  # as a writer process would
    assert read() == "BBBB"
    assert read() == "BBBB"
    assert counter.n == 2


def test_a_shareable_list_is_keyed_by_its_items(counter: Counter) -> None:
    items = shared_memory.ShareableList([1, "a"])
    try:
        @memo
        def first() -> Any:
            counter()
            return items[0]

        assert first() == 1
        items[0] = 2
        assert first() == 2
        assert first() == 2
        assert counter.n == 2
    finally:
        items.shm.close()
        items.shm.unlink()


def test_a_manager_s_dict_and_list_changed_by_another_process_recompute(counter: Counter) -> None:
    with mp.Manager() as manager:
        shared = manager.dict(k="AAAA")
        rows = manager.list([1])

        @memo
        def look() -> tuple[str, int]:
            counter()
            return shared["k"], rows[0]

        assert look() == ("AAAA", 1)
        writer = mp.get_context("fork").Process(target=shared.__setitem__, args=("k", "BBBB"))
        writer.start()
        writer.join()
        assert look() == ("BBBB", 1)
        rows[0] = 2
        assert look() == ("BBBB", 2)
        assert look() == ("BBBB", 2)
        assert counter.n == 3


def test_shared_ctypes_are_keyed_by_their_bytes(counter: Counter) -> None:
    raw = mp.RawArray("i", [1, 1])
    value = mp.RawValue("d", 1.0)
    locked = mp.Array("i", [5, 5])

    @memo
    def total() -> float:
        counter()
        return raw[0] + value.value + locked[0]

    assert total() == 7.0
    raw[0] = 2
    assert total() == 8.0
    value.value = 2.0
    assert total() == 9.0
    locked[0] = 6
    assert total() == 10.0
    assert total() == 10.0
    assert counter.n == 4


def test_a_global_mmap_is_keyed_by_its_bytes(tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"AAAA")
    with open(path, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as mapped:
        @memo
        def head() -> bytes:
            counter()
            return mapped[:4]

        assert head() == b"AAAA"
        mapped[:4] = b"BBBB"  # the file written through another mapping would show the same
        assert head() == b"BBBB"
        assert head() == b"BBBB"
        assert counter.n == 2


# -- global open handles ---------------------------------------------------------------------------------------
_HANDLE_CELLS = [RUNS_SETUP, """
import sqlite3, zipfile
import numpy as np
import diskcache
from notebook_memo import memo

F = open("x.txt")
C = sqlite3.connect("x.db")
Z = zipfile.ZipFile("x.zip")
N = np.load("x.npz")
DC = diskcache.Cache("dc")

@memo
def text():
    ran("text")
    F.seek(0)
    return F.read()

@memo
def row():
    ran("row")
    return C.execute("select v from t").fetchall()[0][0]

@memo
def member():
    ran("member")
    return Z.read("a.txt").decode()

@memo
def array():
    ran("array")
    return int(N["a"][0])

@memo
def stored():
    ran("stored")
    return DC["k"]

OUT["values"] = [text(), row(), member(), array(), stored()]
OUT["runs"] = dict(RUNS)
"""]


def _write_handle_files(folder: Path, value: str) -> None:
    import sqlite3
    import zipfile

    import diskcache
    import numpy as np

    (folder / "x.txt").write_text(value)
    with sqlite3.connect(folder / "x.db") as connection:
        connection.execute("create table if not exists t(v)")
        connection.execute("delete from t")
        connection.execute("insert into t values (?)", (value,))
    connection.close()
    with zipfile.ZipFile(folder / "x.zip", "w") as archive:
        archive.writestr("a.txt", value)
    np.savez(folder / "x.npz", a=np.array([len(value)]))
    with diskcache.Cache(folder / "dc") as cache:
        cache["k"] = value


def test_global_handles_read_files_that_a_restart_sees_changed(cache_dir: Path) -> None:
    folder = cache_dir.parent
    _write_handle_files(folder, "AAAA")
    first = run_kernel(_HANDLE_CELLS, cache_dir, seed=1)
    assert first["values"] == ["AAAA", "AAAA", "AAAA", 4, "AAAA"]
    again = run_kernel(_HANDLE_CELLS, cache_dir, seed=2)
    assert again["values"] == first["values"]
    # Nothing changed: hits after a restart (opening a diskcache rewrites its settings rows, with the same values).
    assert again["runs"] == {}, again["_warnings"]
    assert not [w for w in again["_warnings"] if "left out" in w]
    _write_handle_files(folder, "BBBBB")
    changed = run_kernel(_HANDLE_CELLS, cache_dir, seed=3)
    assert changed["values"] == ["BBBBB", "BBBBB", "BBBBB", 5, "BBBBB"]
    assert changed["runs"] == {"text": 1, "row": 1, "member": 1, "array": 1, "stored": 1}


def test_a_handle_whose_file_cannot_be_told_is_not_stored(tmp_path: Path, counter: Counter) -> None:
    import io

    buffer = io.StringIO("AAAA")
    path = tmp_path / "y.txt"
    path.write_text("AAAA")

    class Holder:
        def __init__(self) -> None:
            self.fh = open(path)
            self.scale = 2

    holder = Holder()

    @memo
    def from_memory() -> str:
        counter()
        buffer.seek(0)
        return buffer.read()

    @memo
    def through_holder() -> str:
        counter()
        holder.fh.seek(0)
        return holder.fh.read() * holder.scale

    try:
        with pytest.warns(MemoWarning, match="buffer.*not cached"):
            assert from_memory() == "AAAA"
        buffer.seek(0)
        buffer.write("BBBB")
        assert from_memory() == "BBBB"
        with pytest.warns(MemoWarning, match="holder.*not cached"):
            assert through_holder() == "AAAAAAAA"
        path.write_text("CCCC")
        assert through_holder() == "CCCCCCCC"
        assert counter.n == 4
    finally:
        holder.fh.close()


def test_a_global_diskcache_changed_by_another_process_recomputes(tmp_path: Path, counter: Counter) -> None:
    import subprocess
    import sys

    import diskcache

    with diskcache.Cache(tmp_path / "dc") as store:
        store["k"] = "AAAA"

        @memo
        def look() -> str:
            counter()
            return str(store["k"])

        assert look() == "AAAA"
        assert look() == "AAAA"
        assert counter.n == 1  # a hit while nothing changed
        writer = f"import diskcache; diskcache.Cache({str(tmp_path / 'dc')!r})['k'] = 'BBBB'"
        subprocess.run([sys.executable, "-c", writer], check=True)
        assert look() == "BBBB"
        assert counter.n == 2


def test_a_cell_calling_a_helper_that_reads_a_global_file_runs_again_once_it_changes(
        shell: Any, tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "x.txt"
    path.write_text("AAAA")
    shell.run("%load_ext notebook_memo")
    shell.ip.user_ns["counter"] = counter
    shell.run(f"F = open({str(path)!r})\nBUF = __import__('io').StringIO('mem')")
    shell.run("def head():\n    F.seek(0)\n    return F.read()\n\n"
              "def memory():\n    BUF.seek(0)\n    return BUF.read()")
    cell = "%%memo\ncounter()\ny = head()"
    shell.run(cell)
    shell.run(cell)
    assert shell["y"] == "AAAA" and counter.n == 1  # a hit while the file is as it was
    path.write_text("BBBB")
    shell.run(cell)
    assert shell["y"] == "BBBB" and counter.n == 2
    with pytest.warns(StorageWarning, match="not cached.*BUF"):
        shell.run("%%memo\ncounter()\nz = memory()")
    shell.run("%%memo\ncounter()\nz = memory()")
    assert shell["z"] == "mem" and counter.n == 4
    shell.run("F.close()")


def test_an_async_function_reading_a_global_file_recomputes_once_it_changes(tmp_path: Path, counter: Counter) -> None:
    import asyncio

    path = tmp_path / "x.txt"
    path.write_text("AAAA")
    with open(path) as handle:
        @memo
        async def head() -> str:
            counter()
            handle.seek(0)
            return handle.read()

        assert asyncio.run(head()) == "AAAA"
        assert asyncio.run(head()) == "AAAA"
        path.write_text("BBBB")
        assert asyncio.run(head()) == "BBBB"
        assert counter.n == 2


# -- torch's readers that read a file in C++ -------------------------------------------------------------------
def _saved_module(value: float) -> Any:
    import torch

    class Shift(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("v", torch.tensor([value]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.v

    return Shift()


def test_torch_jit_load_reads_a_file_a_replaced_module_shows(tmp_path: Path, counter: Counter) -> None:
    import torch

    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(_saved_module(1.0)), path)

    @memo
    def run(name: str) -> float:
        counter()
        return float(torch.jit.load(name)(torch.zeros(1))[0])

    @memo
    def run_by_module_path(name: str) -> float:
        counter()
        return float(torch.jit._serialization.load(name)(torch.zeros(1))[0])

    assert run(str(path)) == 1.0
    assert run_by_module_path(str(path)) == 1.0
    assert run(str(path)) == 1.0
    assert counter.n == 2
    torch.jit.save(torch.jit.script(_saved_module(2.0)), path)
    assert run(str(path)) == 2.0
    assert run_by_module_path(str(path)) == 2.0
    assert counter.n == 4


def test_torch_export_load_reads_an_archive_a_replaced_program_shows(tmp_path: Path, counter: Counter) -> None:
    import torch

    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(_saved_module(1.0), (torch.zeros(1),)), path)

    @memo
    def run(name: str) -> float:
        counter()
        return float(torch.export.load(name).module()(torch.zeros(1))[0])

    assert run(str(path)) == 1.0
    assert run(str(path)) == 1.0
    assert counter.n == 1
    torch.export.save(torch.export.export(_saved_module(2.0), (torch.zeros(1),)), path)
    assert run(str(path)) == 2.0
    assert counter.n == 2


def test_a_torch_package_importer_reads_its_archive(tmp_path: Path, counter: Counter) -> None:
    import torch
    from torch.package import PackageExporter, PackageImporter

    path = tmp_path / "p.pt"

    def write(value: list[int]) -> None:
        with PackageExporter(str(path)) as exporter:
            exporter.save_pickle("data", "values.pkl", value)

    write([1])

    @memo
    def first(name: str) -> int:
        counter()
        return int(PackageImporter(name).load_pickle("data", "values.pkl")[0])

    assert first(str(path)) == 1
    assert first(str(path)) == 1
    write([2])
    assert first(str(path)) == 2
    assert counter.n == 2
    assert torch.package.PackageImporter is PackageImporter


# -- fsspec's in-memory file system ----------------------------------------------------------------------------
def test_a_body_reading_fsspec_memory_files_is_not_stored(counter: Counter) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe_file("/round7/x.txt", b"AAAA")

    @memo
    def through_open() -> str:
        counter()
        with fsspec.open("memory://round7/x.txt", "r") as fh:
            return str(fh.read())

    @memo
    def through_cat() -> bytes:
        counter()
        return bytes(fs.cat_file("/round7/x.txt"))

    @memo
    def listing() -> list[str]:
        counter()
        return sorted(fs.ls("/round7", detail=False))

    try:
        with pytest.warns(Warning, match="in-memory"):
            assert through_open() == "AAAA"
        assert through_cat() == b"AAAA"
        assert listing() == ["/round7/x.txt"]
        fs.pipe_file("/round7/x.txt", b"BBBB")
        fs.pipe_file("/round7/y.txt", b"")
        assert through_open() == "BBBB"
        assert through_cat() == b"BBBB"
        assert listing() == ["/round7/x.txt", "/round7/y.txt"]
        assert counter.n == 6
    finally:
        fs.rm("/round7", recursive=True)


def test_a_batch_reading_a_global_file_recomputes_once_it_changes(tmp_path: Path, counter: Counter) -> None:
    import io

    path = tmp_path / "x.txt"
    path.write_text("A")
    buffer = io.StringIO("M")
    with open(path) as handle:
        @memo.batch("xs")
        def tagged(xs: list[int]) -> list[str]:
            counter()
            handle.seek(0)
            prefix = handle.read()
            return [f"{prefix}{x}" for x in xs]

        @memo.batch("xs")
        def from_memory(xs: list[int]) -> list[str]:
            counter()
            buffer.seek(0)
            return [f"{buffer.read()}{x}" for x in xs]

        assert tagged([1, 2]) == ["A1", "A2"]
        assert tagged([1, 2]) == ["A1", "A2"]
        assert counter.n == 1
        path.write_text("B")
        assert tagged([1, 2]) == ["B1", "B2"]
        assert counter.n == 2
        with pytest.warns(MemoWarning, match="buffer.*not cached"):
            assert from_memory([1]) == ["M1"]
        assert from_memory([1]) == ["M1"]
        assert counter.n == 4

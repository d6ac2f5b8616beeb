"""Data reads that no audit event names: a file descriptor opened before the body ran and read in it (``os.pread``,
``os.read``, ``open(fd)``, ``os.fdopen``), files on a memory file system changed in place (/dev/shm), shared memory
segments opened by name, and Python files loaded by path with importlib. Restarts are real processes (other
PYTHONHASHSEED); files are real.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from notebook_memo import MemoWarning, memo
from notebook_memo._config import RACY_SECONDS
from notebook_memo._descriptors import file_clock
from tests.conftest import RUNS_SETUP, Counter, run_kernel

# -- descriptors opened before the body -----------------------------------------------------------------------

_FD_READERS = {
    "pread": "os.pread(FD, 100, 0).decode()",
    "read": "(os.lseek(FD, 0, 0), os.read(FD, 100).decode())[1]",
    "readv": "(os.lseek(FD, 0, 0), os.readv(FD, [b := bytearray(4)]), b.decode())[-1]",
    "open": "(os.lseek(FD, 0, 0), open(FD, closefd=False).read())[1]",
    "fdopen": "(os.lseek(FD, 0, 0), os.fdopen(FD, closefd=False).read())[1]",
    "dict": "os.pread(HANDLES['x'], 100, 0).decode()",
}


def _fd_cells(read: str) -> list[str]:
    return ["import os\nfrom notebook_memo import memo\nFD = os.open('x.txt', os.O_RDONLY)\nHANDLES = {'x': FD}",
            f"@memo\ndef f():\n    return {read}",
            "OUT['v'] = f()"]


@pytest.mark.parametrize("how", sorted(_FD_READERS))
def test_a_descriptor_opened_before_the_body_is_a_read_after_a_restart(cache_dir: Path, how: str) -> None:
    data = cache_dir.parent / "x.txt"
    data.write_text("AAAA")
    assert run_kernel(_fd_cells(_FD_READERS[how]), cache_dir, seed=1)["v"] == "AAAA"
    data.write_text("BBBB")
    assert run_kernel(_fd_cells(_FD_READERS[how]), cache_dir, seed=2)["v"] == "BBBB"


def test_a_descriptor_opened_in_an_earlier_cell_is_a_read_of_a_memo_cell(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", "import os\nFD = os.open('x.txt', os.O_RDONLY)",
             "%%memo\nv = os.pread(FD, 100, 0).decode()", "OUT['v'] = v"]
    data = cache_dir.parent / "x.txt"
    data.write_text("AAAA")
    assert run_kernel(cells, cache_dir, seed=1)["v"] == "AAAA"
    data.write_text("BBBB")
    assert run_kernel(cells, cache_dir, seed=2)["v"] == "BBBB"


def test_a_descriptor_read_in_the_same_process_sees_a_change(tmp_path: Path, counter: Counter) -> None:
    data = tmp_path / "y.txt"
    data.write_text("AAAA")
    fd = os.open(data, os.O_RDONLY)
    try:
        @memo
        def f() -> bytes:
            counter()
            return os.pread(fd, 100, 0)

        assert f() == b"AAAA" and f() == b"AAAA" and counter.n == 1
        data.write_text("BBBBB")
        assert f() == b"BBBBB" and counter.n == 2
    finally:
        os.close(fd)


@pytest.mark.parametrize("other_name", [False, True])
def test_a_descriptor_whose_file_lost_its_name_before_the_run_is_not_stored(
        tmp_path: Path, counter: Counter, other_name: bool) -> None:
    data = tmp_path / "gone.txt"
    data.write_text("AAAA")
    if other_name:
        os.link(data, tmp_path / "other.txt")  # still a file, under a name the descriptor does not give
    fd = os.open(data, os.O_RDONLY)
    data.unlink()
    while file_clock() <= os.fstat(fd).st_ctime_ns:  # the removal is older than the run: not its temporary
        time.sleep(0.001)
    try:
        @memo
        def f() -> bytes:
            counter()
            return os.pread(fd, 100, 0)

        with pytest.warns(MemoWarning, match="descriptor whose file has no name"):
            assert f() == b"AAAA"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MemoWarning)
            f()
        assert counter.n == 2
    finally:
        os.close(fd)


def test_a_temporary_file_the_body_makes_and_reads_back_is_stored(counter: Counter) -> None:
    @memo
    def f() -> bytes:
        counter()
        with tempfile.TemporaryFile() as fh:
            fh.write(b"scratch")
            fh.seek(0)
            return os.read(fh.fileno(), 100)

    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert f() == b"scratch" and f() == b"scratch"
    assert counter.n == 1


def test_a_pipe_opened_before_the_body_is_not_data(counter: Counter) -> None:
    r, w = os.pipe()
    try:
        os.write(w, b"hello")

        @memo
        def f() -> int:
            counter()
            return len(os.read(r, 5))

        with warnings.catch_warnings():
            warnings.simplefilter("error", MemoWarning)
            assert f() == 5 and f() == 5
        assert counter.n == 1
    finally:
        os.close(r)
        os.close(w)


# -- files in memory (/dev/shm) --------------------------------------------------------------------------------

class _Mapped:
    """A file in /dev/shm written through one shared mapping held open, as shared memory is: after the first write
    maps its page, later writes change its bytes and leave its size, times and inode as they were."""

    def __init__(self, size: int) -> None:
        self.path = Path("/dev/shm") / f"notebook_memo_test_{uuid.uuid4().hex}"
        self.path.write_bytes(bytes(size))
        with open(self.path, "r+b") as fh:
            self.mapping = mmap.mmap(fh.fileno(), size)

    def write(self, data: bytes) -> None:
        self.mapping[:len(data)] = data

    def stat(self) -> tuple[int, ...]:
        st = os.stat(self.path)
        return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


@pytest.fixture
def shm_file() -> Iterator[_Mapped]:
    mapped = _Mapped(4)
    yield mapped
    mapped.mapping.close()
    mapped.path.unlink(missing_ok=True)


def test_a_file_in_dev_shm_changed_through_a_mapping_is_a_miss(
        cache_dir: Path, shm_file: _Mapped, counter: Counter) -> None:
    shm_file.write(b"AAAA")
    before = shm_file.stat()
    time.sleep(RACY_SECONDS + 0.1)  # the file is older than the racy window: a stat shows it settled
    cells = ["from notebook_memo import memo",
             f"@memo\ndef f():\n    return open({str(shm_file.path)!r}, 'rb').read().decode()",
             "OUT['v'] = f()"]
    assert run_kernel(cells, cache_dir, seed=1)["v"] == "AAAA"

    @memo
    def g() -> bytes:
        counter()
        return shm_file.path.read_bytes()

    assert g() == b"AAAA" and g() == b"AAAA" and counter.n == 1
    shm_file.write(b"BBBB")
    assert shm_file.stat() == before  # what makes the change hard to see
    assert run_kernel(cells, cache_dir, seed=2)["v"] == "BBBB"
    assert g() == b"BBBB" and counter.n == 2
    shm_file.write(b"CCCC")  # again: no digest is trusted by the file's unchanged stat
    assert g() == b"CCCC" and counter.n == 3


# -- shared memory opened by name ------------------------------------------------------------------------------

_SEGMENT_READER = """
@memo
def f(name):
    from multiprocessing import resource_tracker, shared_memory
    segment = shared_memory.SharedMemory(name=name)
    resource_tracker.unregister(segment._name, "shared_memory")  # ours: not to be removed as this process ends
    try:
        return bytes(segment.buf[:4]).decode()
    finally:
        segment.close()
"""


@pytest.mark.parametrize("loaded_before", [True, False])
def test_a_shared_memory_segment_opened_by_name_is_a_read(cache_dir: Path, loaded_before: bool) -> None:
    from multiprocessing import shared_memory

    segment = shared_memory.SharedMemory(create=True, size=4)
    try:
        segment.buf[:4] = b"AAAA"
        first = "from notebook_memo import memo" + ("\nimport multiprocessing.shared_memory" if loaded_before else "")
        cells = [first, _SEGMENT_READER, f"OUT['v'] = f({segment.name!r})"]
        assert run_kernel(cells, cache_dir, seed=1)["v"] == "AAAA"
        segment.buf[:4] = b"BBBB"
        assert run_kernel(cells, cache_dir, seed=2)["v"] == "BBBB"
        assert run_kernel(cells, cache_dir, seed=3)["v"] == "BBBB"
    finally:
        segment.close()
        segment.unlink()


def test_a_shared_memory_segment_the_body_makes_is_not_a_read(counter: Counter) -> None:
    from multiprocessing import shared_memory

    @memo
    def f() -> int:
        counter()
        segment = shared_memory.SharedMemory(create=True, size=8)
        try:
            segment.buf[:3] = b"abc"
            return len(bytes(segment.buf[:3]))
        finally:
            segment.close()
            segment.unlink()

    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert f() == 3 and f() == 3
    assert counter.n == 1


# -- Python files loaded by path -------------------------------------------------------------------------------

_BY_PATH = {
    "spec_from_file_location": "import importlib.util\n"
                               "spec = importlib.util.spec_from_file_location('p', 'params.py')\n"
                               "m = importlib.util.module_from_spec(spec)\n"
                               "spec.loader.exec_module(m)\n",
    "SourceFileLoader": "import importlib.machinery, warnings\n"
                        "with warnings.catch_warnings():\n"
                        "    warnings.simplefilter('ignore', DeprecationWarning)\n"
                        "    m = importlib.machinery.SourceFileLoader('p', 'params.py').load_module()\n",
    "runpy.run_module": "import runpy\n"
                        "m = type('M', (), runpy.run_module('params'))\n",
}


def _by_path_cells(load: str) -> list[str]:
    body = "".join(f"    {line}\n" for line in load.splitlines())
    # The folder on the import path before the function: a body that puts it there leaves sys.path changed, which
    # a hit would not do, and is not stored.
    return [RUNS_SETUP + "import sys\nsys.path.insert(0, '.')",
            f"@memo\ndef f():\n    ran('f')\n{body}    return m.ALPHA",
            "OUT['v'] = f()", "OUT['again'] = f()", "OUT['runs'] = RUNS.get('f', 0)"]


@pytest.mark.parametrize("how", sorted(_BY_PATH))
def test_a_python_file_loaded_by_path_is_a_read_after_a_restart(cache_dir: Path, how: str) -> None:
    params = cache_dir.parent / "params.py"
    params.write_text("ALPHA = 1\n")
    first = run_kernel(_by_path_cells(_BY_PATH[how]), cache_dir, seed=1)
    assert (first["v"], first["again"], first["runs"]) == (1, 1, 1)  # the second call hits: the entry is stored
    second = run_kernel(_by_path_cells(_BY_PATH[how]), cache_dir, seed=2)  # its bytecode is read from __pycache__
    assert (second["v"], second["runs"]) == (1, 0)
    params.write_text("ALPHA = 2\n")
    assert run_kernel(_by_path_cells(_BY_PATH[how]), cache_dir, seed=3)["v"] == 2


def test_a_module_imported_by_name_in_the_body_is_still_code_not_data(cache_dir: Path) -> None:
    helper = cache_dir.parent / "helper_round7.py"
    helper.write_text("ALPHA = 1\n\ndef unrelated():\n    return 0\n")
    cells = [RUNS_SETUP + "import sys\nsys.path.insert(0, '.')",
             "@memo\ndef f():\n    ran('f')\n    import helper_round7\n    return helper_round7.ALPHA",
             "OUT['v'] = f()", "OUT['runs'] = RUNS.get('f', 0)"]
    assert run_kernel(cells, cache_dir, seed=1) == {"v": 1, "runs": 1, "_warnings": []}
    assert run_kernel(cells, cache_dir, seed=2)["runs"] == 0  # its bytecode read from __pycache__ is no change
    helper.write_text("ALPHA = 1\n\ndef unrelated():\n    return 1\n")  # an edit the body does not use
    out = run_kernel(cells, cache_dir, seed=3)
    assert (out["v"], out["runs"]) == (1, 0)

"""Identity a key must hold besides the user's code and data: the version of notebook_memo that made an
entry (its rules decide what is keyed and recorded), and the host, user, process and platform a body reads.

Each case runs real processes sharing one cache folder, with other hash seeds: a restarted kernel, an
upgraded library, another machine or user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from notebook_memo import _config
from tests.conftest import ROOT, run_kernel

# A notebook session in one process: a function, a batch and a %%memo cell, each computed or served.
_LIBRARY_SESSION = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
import notebook_memo
from notebook_memo import memo

@memo
def square(x):
    return x * x

@memo.batch("xs")
def doubled(xs):
    return [2 * x for x in xs]

ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "notebook_memo")
ip.user_ns["base"] = 7
result = ip.run_cell("%%memo\\ncell_out = base + 1\\n")
assert not (result.error_in_exec or result.error_before_exec), result
why = str(square.explain(3))
square(3)
doubled([1, 2])
cell = [c for c in notebook_memo._cells._cells.values()][0]
print("RESULT" + json.dumps({"package": notebook_memo.__file__, "square": square.cache_info().hits,
                             "batch": doubled.cache_info().hits, "cell": bool(cell.last_hit),
                             "why": why, "stale": square.clear_stale()}))
"""


def _session(code: str, package_parent: Path, cache_dir: Path, seed: int) -> dict[str, Any]:
    """Run ``code`` in a fresh process importing notebook_memo from ``package_parent``; return its RESULT."""
    environment = {**os.environ, "PYTHONHASHSEED": str(seed), _config.ENV_DIR: str(cache_dir),
                   "PYTHONPATH": str(package_parent)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, timeout=120, cwd=str(cache_dir.parent))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])  # type: ignore[no-any-return]
    raise AssertionError(f"session failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


def _package_copy(where: Path, edit: str | None = None) -> Path:
    """Copy notebook_memo's sources under ``where`` (optionally appending ``edit`` to one module); return
    the folder to put on the path."""
    shutil.copytree(ROOT / "notebook_memo", where / "notebook_memo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        with open(where / "notebook_memo" / "_explain.py", "a") as fh:
            fh.write(edit)
    return where


def test_an_entry_made_by_another_version_of_the_library_is_a_miss(tmp_path: Path, cache_dir: Path) -> None:
    first = _package_copy(tmp_path / "first")
    same = _package_copy(tmp_path / "same")  # an identical copy at another path, written later
    edited = _package_copy(tmp_path / "edited", "\n# a harmless edit: another version of the rules\n")
    made = _session(_LIBRARY_SESSION, first, cache_dir, seed=1)
    assert made["package"].startswith(str(first))
    assert (made["square"], made["batch"], made["cell"]) == (0, 0, False)
    again = _session(_LIBRARY_SESSION, same, cache_dir, seed=2)
    assert again["package"].startswith(str(same))
    assert (again["square"], again["batch"], again["cell"]) == (1, 2, True)  # each item of the batch is a hit
    upgraded = _session(_LIBRARY_SESSION, edited, cache_dir, seed=3)
    assert upgraded["package"].startswith(str(edited))
    assert (upgraded["square"], upgraded["batch"], upgraded["cell"]) == (0, 0, False)
    assert "made by another version of notebook_memo" in upgraded["why"]
    assert (made["stale"], again["stale"], upgraded["stale"]) == (0, 0, 1)  # the other version's entry


# -- the machine, the user, the process and the platform a body reads ---------------------------------------------

_OTHER_HOST = "otherhost-nbm"
# Bodies whose answer is the machine's: each must be computed anew on another one.
_HOST_SESSION = """
import json, os, platform, socket, sys
from notebook_memo import memo

@memo
def by_socket(): return socket.gethostname()
@memo
def by_platform(): return platform.node()
@memo
def by_uname(): return os.uname().nodename
@memo
def by_platform_uname(): return platform.uname().node
@memo
def scratch(): return f"/scratch/{socket.gethostname()}/run"
@memo
def fqdn(): return socket.getfqdn()
def where(): return socket.gethostname()  # a helper of the user's: followed
@memo
def through_helper(): return where() + "!"
@memo
def plain(x): return x + 1  # reads nothing of the machine: served on any

host = [f() for f in (by_socket, by_platform, by_uname, by_platform_uname, scratch, fqdn, through_helper)]
plain(1)
print("RESULT" + json.dumps({"hits": [f.cache_info().hits for f in (by_socket, by_platform, by_uname,
                             by_platform_uname, scratch, fqdn, through_helper)], "plain": plain.cache_info().hits,
                             "host": host}))
"""


def _works(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def _another_host() -> tuple[list[str], str]:
    """Return how to run a process on 'another machine': a command prefix that gives it a host name of its own
    (a UTS namespace: root, as here and in CI), else the text of a prelude replacing the host name notebook_memo
    reads (where no namespace can be made)."""
    if _works(["unshare", "--uts", "true"]):
        return ["unshare", "--uts", "sh", "-c", f'hostname {_OTHER_HOST} && exec "$@"', "x"], ""
    return [], f"from notebook_memo import _dependencies\n_dependencies._host_name = lambda: {_OTHER_HOST!r}\n"


def _run(code: str, cache_dir: Path, seed: int, prefix: list[str] = (), prelude: str = "",  # type: ignore[assignment]
         **env: str) -> dict[str, Any]:
    """Run ``code`` (after ``prelude``) in a fresh process on notebook_memo from this checkout; return its RESULT."""
    environment = {**os.environ, "PYTHONHASHSEED": str(seed), _config.ENV_DIR: str(cache_dir),
                   "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run([*prefix, sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, env=environment, timeout=120, cwd=str(cache_dir.parent))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])  # type: ignore[no-any-return]
    raise AssertionError(f"process failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


def test_a_body_reading_the_host_name_is_computed_anew_on_another_machine(cache_dir: Path) -> None:
    prefix, prelude = _another_host()
    here = _run(_HOST_SESSION, cache_dir, seed=1)
    assert here["hits"] == [0] * 7 and here["plain"] == 0
    elsewhere = _run(_HOST_SESSION, cache_dir, seed=2, prefix=prefix, prelude=prelude)
    assert elsewhere["hits"] == [0] * 7, elsewhere  # each computed anew there
    assert elsewhere["plain"] == 1
    if prefix:  # a real other host name: its own answers
        assert elsewhere["host"][:5] == [_OTHER_HOST] * 4 + [f"/scratch/{_OTHER_HOST}/run"]
    back = _run(_HOST_SESSION, cache_dir, seed=3)  # a restart on the first machine: all served
    assert back["hits"] == [1] * 7 and back["plain"] == 1
    assert back["host"] == here["host"]


# Bodies whose answer is the user's: each must be computed anew for another user sharing the team's cache.
_USER_SESSION = """
import getpass, json, os, pwd
from notebook_memo import memo

@memo
def me(): return pwd.getpwuid(os.getuid()).pw_name
@memo
def uid(): return os.getuid()
@memo
def euid(): return os.geteuid()
@memo
def groups(): return os.getgid(), os.getgroups()
@memo
def home_of_me(): return os.path.expanduser("~" + pwd.getpwuid(os.geteuid()).pw_name)
@memo
def user(): return getpass.getuser()
@memo
def plain(x): return x + 1  # reads nothing of the user: served to anyone

plain(1)  # first: a user who cannot write to the team's folder stops using it after a failed write
user_reads = (me, uid, euid, groups, home_of_me, user)
answers = [f() for f in user_reads]
print("RESULT" + json.dumps({"hits": [f.cache_info().hits for f in user_reads], "plain": plain.cache_info().hits,
                             "answers": answers}))
"""


def _another_user() -> tuple[list[str], str]:
    """Return how to run a process as another user: setpriv to uid 1000 where this process may (root, as here
    and in CI), else a prelude replacing the user ids notebook_memo reads."""
    if os.geteuid() == 0 and _works(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "true"]):
        return ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"], ""
    return [], "from notebook_memo import _dependencies\n_dependencies._user_ids = lambda: 'uid 1000'\n"


def test_a_body_reading_the_user_is_computed_anew_for_another_user(tmp_path: Path) -> None:
    prefix, prelude = _another_user()
    shared = Path(tempfile.mkdtemp(prefix="nbm-users-"))  # under /tmp: the other user reaches it
    try:
        os.chmod(shared, 0o777)
        (shared / "team").mkdir(mode=0o777)
        os.chmod(shared / "team", 0o777)
        (shared / "theirs").mkdir(mode=0o777)
        os.chmod(shared / "theirs", 0o777)
        # The same user variables for both: only the user the process runs as differs.
        team = {_config.ENV_REMOTE: f"file://{shared / 'team'}", _config.ENV_SECRET: "team", "HOME": str(shared),
                "USER": "team", "LOGNAME": "team"}
        mine = _run(_USER_SESSION, shared / "mine", seed=1, **team)
        assert mine["hits"] == [0] * 6 and mine["plain"] == 0
        theirs = _run(_USER_SESSION, shared / "theirs" / "cache", seed=2, prefix=prefix, prelude=prelude, **team)
        assert theirs["hits"] == [0] * 6, theirs  # each computed anew for them
        assert theirs["plain"] == 1  # through the team's folder
        if prefix:
            assert theirs["answers"][1:3] == [1000, 1000]
        again = _run(_USER_SESSION, shared / "mine", seed=3, **team)  # the first user after a restart: served
        assert again["hits"] == [1] * 6 and again["plain"] == 1
        assert again["answers"] == mine["answers"]
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# A kernel's process and thread, and the platform: read by the body's own code, keyed; reached only inside a
# library (logging's records, tqdm's locks, pandas), not.
_PROCESS_SESSION = """
import json, logging, os, sys, threading
import pandas as pd
from tqdm import tqdm
from notebook_memo import memo

logging.basicConfig(format="%(process)d %(thread)d %(message)s", level=logging.INFO, stream=sys.stderr)
if PRETEND:  # another platform, as a teammate's machine is
    sys.platform, sys.byteorder = "darwin", ("little" if sys.byteorder == "big" else "big")

@memo
def pid(): return os.getpid()
@memo
def parent(): return os.getppid()
@memo
def thread(): return threading.get_ident()
def run_folder(): return f"/tmp/run-{os.getpid()}"  # a helper of the user's: followed
@memo
def scratch(): return run_folder()
@memo
def mac(): return "mac" if sys.platform == "darwin" else "other"
@memo
def order(): return sys.byteorder
@memo
def logged(x):
    logging.getLogger("work").info("computing %s", x)
    return x + 1
@memo
def counted(n): return sum(1 for _ in tqdm(range(n), disable=False))
@memo
def framed(n): return int(pd.DataFrame({"a": range(n)})["a"].sum())

keyed = (pid, parent, thread, scratch, mac, order)
answers = [f() for f in keyed]
logged(1), counted(3), framed(4)
print("RESULT" + json.dumps({"hits": [f.cache_info().hits for f in keyed], "answers": answers,
                             "library": [f.cache_info().hits for f in (logged, counted, framed)]}))
"""


def test_platform_reads_are_keyed_by_their_values_and_process_ids_by_reading_them(cache_dir: Path) -> None:
    first = _run("PRETEND = False\n" + _PROCESS_SESSION, cache_dir, seed=1)
    assert first["hits"] == [0] * 6 and first["library"] == [0] * 3
    restarted = _run("PRETEND = False\n" + _PROCESS_SESSION, cache_dir, seed=2)
    # Another process: the process and thread ids are keyed by being read, not by their values (as the clock is:
    # a body that logs them would otherwise miss after every restart), so every body is served.
    assert restarted["hits"] == [1] * 6, restarted
    assert restarted["answers"] == first["answers"]
    assert restarted["library"] == [1, 1, 1]
    elsewhere = _run("PRETEND = True\n" + _PROCESS_SESSION, cache_dir, seed=3)
    assert elsewhere["hits"][4:] == [0, 0] and elsewhere["answers"][4] == "mac"  # computed for that platform
    assert elsewhere["library"] == [1, 1, 1]


def test_a_cell_reading_its_process_id_is_restored_after_a_restart(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", "import os, socket, sys\nfrom notebook_memo import _cells",
             "%%memo ids\nmine = os.getpid()\nwhere = socket.gethostname()",
             "%%memo plat\nplat = sys.platform",
             "OUT.update(mine=mine, pid=os.getpid(), ids=_cells._cells['ids'].last_hit, "
             "plat=_cells._cells['plat'].last_hit)"]
    first = run_kernel(cells, cache_dir, seed=1)
    assert first["mine"] == first["pid"] and not first["ids"] and not first["plat"]
    second = run_kernel(cells, cache_dir, seed=2)
    assert second["ids"] and second["mine"] == first["pid"] != second["pid"]  # the id is not keyed by its value
    assert second["plat"]  # the platform is the same: restored

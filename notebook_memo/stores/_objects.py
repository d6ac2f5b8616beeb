"""Named byte objects on object storage or a shared directory: the few operations the remote tier needs.

Two implementations of one small interface: ``CloudObjects`` reaches S3, GCS and Azure (and any
S3-compatible server: MinIO, R2, a test server on 127.0.0.1) through obstore, with credentials and
endpoint from the client's standard environment variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ...); ``DirectoryObjects`` is a plain shared directory (``file:///mnt/team``).
Both write whole objects only (a reader sees all of one or nothing) and both can create an object
only if it is absent, the commit point of a remote entry.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

__all__ = ()

_SMALL_TIMEOUT = "10s"  # a request for a manifest or a lease: a server that stalls costs a call this much, once
_LARGE_TIMEOUT = "600s"  # a request for a payload blob, streamed within it
_CONNECT_TIMEOUT = "5s"
_RETRIES = 2
_LARGE_PREFIX = "b/"
_BAD_SEGMENTS = ("", ".", "..")  # what makes an object's name no path for obstore: the listing stops at one
_QUOTED_PATH = re.compile(r'Path "([^"]*)"')


def others_could_write(checked: Iterable[tuple[str, os.stat_result]]) -> str | None:
    """Return why someone else could have written the first of these paths that they could, or None.

    Each path is given with its ``stat``: owned by another user, or writable by group or others."""
    me = os.geteuid()
    for path, info in checked:
        if info.st_uid != me:
            return f"{path} is owned by user {info.st_uid}, not by you (user {me})"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{path} can be written by group or others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


class Refused(OSError):
    """An object that is not read: not a plain file, a link, larger than it may be, or written by others."""


class Planted(Refused):
    """An object no writer of ours makes: a link, not a plain file, or larger than it may be."""


class Unnamable(Refused):
    """Objects a listing skipped: their names (``a/../b``, ``a//b``) are not paths the store's client can use, so
    they are no object of ours; the rest of the listing is whole."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        shown = ", ".join(repr(name) for name in names[:5]) + (" ..." if len(names) > 5 else "")
        super().__init__(f"skipped {len(names)} objects with names it cannot use: {shown}")


class Incomplete(Refused):
    """A listing that passed over objects whose names the client cannot use, and may have missed others near them."""

    def __init__(self, message: str, names: list[str]) -> None:
        self.names = names
        super().__init__(message)


class ClientPanicked(OSError):
    """obstore's Rust code panicked (a malformed endpoint URL, say): the remote failed, not the caller."""


@contextlib.contextmanager
def _no_panics() -> Iterator[None]:
    """Raise a panic of obstore's Rust code as ClientPanicked: pyo3 raises it as a BaseException, which would
    pass every ``except Exception`` of the remote tier and end the user's call."""
    try:
        yield
    except BaseException as exc:
        if type(exc).__name__ != "PanicException" or isinstance(exc, (Exception, KeyboardInterrupt, SystemExit)):
            raise
        raise ClientPanicked(f"the object store client failed ({str(exc)[:200]}); check the endpoint and "
                             "credentials in the environment (AWS_ENDPOINT_URL, ...)") from None


def _is_endpoint(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:  # a bracketed host left open, a port that is not a number or out of range
        return False


class ObjectStore(Protocol):
    """A flat namespace of immutable-by-convention byte objects."""

    url: str

    def get(self, name: str, most: int | None = None, private: bool = False,
            sized: Callable[[int], None] | None = None) -> memoryview | None:
        """Return the object's bytes, or None when there is none; raise Refused past ``most`` bytes, or
        (``private``) when others could have written it, as far as the store can tell. ``sized`` is called
        with the object's size, when the store tells it, before its bytes are read (it may raise)."""

    def get_tagged(self, name: str, most: int | None = None) -> tuple[memoryview, str] | None:
        """Return the object's bytes and a tag that changes whenever it is replaced, or None; raise Refused
        past ``most`` bytes, unread."""

    def exists(self, name: str) -> bool:
        """Return whether the object exists."""

    def create(self, name: str, data: Any) -> str | None:
        """Write the object only if absent; return its tag ("" when the store gave none), or None when one
        was there already."""

    def put(self, name: str, data: Any) -> None:
        """Write the object, replacing any."""

    def replace(self, name: str, data: Any, tag: str) -> str | None:
        """Write the object only if its tag is still ``tag``; return the new tag, or None when it changed."""

    def delete(self, name: str) -> None:
        """Remove the object if present."""

    def list(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """Yield (name, size, modification time) of the objects under ``prefix``."""

    def staged(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """Yield (name, size, modification time) of the files our writers stage under ``prefix`` before an
        object appears whole (none where objects are written whole by the store itself)."""


class CloudObjects:
    """Objects in a bucket (``s3://``, ``gs://``, ``az://`` ...), through obstore."""

    def __init__(self, url: str) -> None:
        import obstore
        from obstore.store import from_url

        self.url = url
        self._prefix = urlsplit(url).path.strip("/")  # what obstore's errors name a path with, and lists without
        self._ob = obstore
        options: dict[str, Any] = {"timeout": _SMALL_TIMEOUT, "connect_timeout": _CONNECT_TIMEOUT}
        endpoint = next((os.environ[name] for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
                         if os.environ.get(name)), "")
        if endpoint and not _is_endpoint(endpoint):
            # obstore would panic on its first request, printing a Rust backtrace: say what is wrong instead.
            raise ClientPanicked(f"the endpoint {endpoint!r} in the environment (AWS_ENDPOINT_URL...) is not an "
                                 "http:// or https:// URL with a host")
        if url.startswith("s3") and endpoint.startswith("http://"):
            options["allow_http"] = True  # an endpoint the user named as plain http (MinIO, a test server)
        retry = {"max_retries": _RETRIES, "retry_timeout": datetime.timedelta(seconds=10),
                 "backoff": {"init_backoff": datetime.timedelta(milliseconds=50),
                             "max_backoff": datetime.timedelta(seconds=1), "base": 2}}
        with _no_panics():
            self._store = from_url(url, client_options=options, retry_config=retry)  # type: ignore[call-overload]
            self._large = from_url(url, client_options={**options, "timeout": _LARGE_TIMEOUT},  # type: ignore[call-overload]
                                   retry_config=retry)

    def _for(self, name: str) -> Any:
        return self._large if name.startswith(_LARGE_PREFIX) else self._store

    def get(self, name: str, most: int | None = None, private: bool = False,
            sized: Callable[[int], None] | None = None) -> memoryview | None:
        with _no_panics():
            try:
                result = self._ob.get(self._for(name), name)
            except FileNotFoundError:
                return None
            size = result.meta.get("size")
            if most is not None and size is not None and size > most:
                raise Planted(f"{name} holds {size} bytes, more than the {most} it may")  # never read whole
            if sized is not None and size is not None:
                sized(size)
            return memoryview(result.bytes())

    def get_tagged(self, name: str, most: int | None = None) -> tuple[memoryview, str] | None:
        with _no_panics():
            try:
                result = self._ob.get(self._store, name)
            except FileNotFoundError:
                return None
            size = result.meta.get("size")
            if most is not None and size is not None and size > most:
                raise Planted(f"{name} holds {size} bytes, more than the {most} it may")  # never read whole
            tag = result.meta.get("e_tag") or ""
            return memoryview(result.bytes()), tag

    def exists(self, name: str) -> bool:
        with _no_panics():
            try:
                self._ob.head(self._store, name)
            except FileNotFoundError:
                return False
            return True

    def create(self, name: str, data: Any) -> str | None:
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        with _no_panics():
            try:
                result = self._ob.put(self._for(name), name, data, mode="create")
            except (AlreadyExistsError, PreconditionError):
                return None
            return str(result.get("e_tag") or "")

    def put(self, name: str, data: Any) -> None:
        with _no_panics():
            self._ob.put(self._for(name), name, data)

    def replace(self, name: str, data: Any, tag: str) -> str | None:
        from obstore.exceptions import PreconditionError

        with _no_panics():
            try:
                result = self._ob.put(self._store, name, data, mode={"e_tag": tag})
            except (PreconditionError, FileNotFoundError):
                return None
            return str(result.get("e_tag") or "")

    def delete(self, name: str) -> None:
        with _no_panics(), contextlib.suppress(FileNotFoundError):
            self._ob.delete(self._store, name)

    def list(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """Yield the objects under ``prefix``; once the rest is yielded, raise Unnamable when objects whose names
        the client cannot use were skipped, Refused when the listing may have missed names of ours near one.

        obstore fails a whole page of a listing (up to 1,000 names) on one name it cannot parse: the listing goes
        on past it, and what preceded it in that page is lost. Directly under ``prefix`` (``m/../x``, ``m//x``)
        that is only names sorting before ``0``, which no writer of ours makes (ours start with a hex digit);
        deeper (``m/ab/../x``) it may be names of ours, so the listing is not whole."""
        from obstore.exceptions import InvalidPathError

        skipped: list[str] = []
        missed: list[str] = []
        after: str | None = None  # the last name yielded, or the point past a skipped one
        with _no_panics():
            while True:
                try:
                    for page in self._ob.list(self._store, prefix, offset=after):
                        for item in page:
                            after = item["path"]
                            yield item["path"], int(item["size"]), item["last_modified"].timestamp()
                    break
                except InvalidPathError as exc:
                    name, past, shallow = self._past(exc, prefix)
                    if past is None or (after is not None and past <= after):
                        raise Refused(f"the listing of {prefix} stopped at an object whose name it cannot use "
                                      f"({str(exc).splitlines()[0][:200]}): what follows it was not listed") from None
                    (skipped if shallow else missed).append(name)
                    after = past
        if missed:
            raise Incomplete(f"the listing of {prefix} passed over objects whose names it cannot use "
                          f"({', '.join(map(repr, (missed + skipped)[:5]))}): names listed just before them may be "
                          "missing; remove those objects for upkeep to cover everything", missed + skipped)
        if skipped:
            raise Unnamable(skipped)

    def _past(self, exc: Exception, prefix: str) -> tuple[str, str | None, bool]:
        """Return the name obstore could not parse; the first name past it and everything under its bad segment
        (``m/../x``: ``m/..0``, which no writer of ours makes), or None when there is none to give; and whether
        that segment is directly under ``prefix``."""
        found = _QUOTED_PATH.search(str(exc))
        if found is None or not found.group(1).startswith(f"{self._prefix}/" if self._prefix else ""):
            return str(exc)[:200], None, False
        name = found.group(1)[len(self._prefix) + 1 if self._prefix else 0:]
        parts = name.split("/")
        bad = next((i for i, part in enumerate(parts) if part in _BAD_SEGMENTS), None)
        if bad is None:
            return name, None, False
        # Every name under the bad segment is as unusable; "0" follows "/" in byte order, so nothing lies between.
        return name, "/".join([*parts[:bad], parts[bad] + "0"]), bad == len(prefix.strip("/").split("/"))

    def staged(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        yield from ()  # a put is whole or absent: nothing is staged beside the object


@contextlib.contextmanager
def _denied(name: str) -> Iterator[None]:
    """Raise a write this user may not make (a colleague's folder, made before folders were shared), or one over a
    folder put at an object's name, as Refused: that one object is not written, and the remote stays in use."""
    try:
        yield
    except PermissionError as exc:
        raise Refused(f"{name} cannot be written by this user ({exc.strerror or exc}: {exc.filename}); ask the "
                      "owner of that folder to make it writable by the team (chmod g+w)") from None
    except IsADirectoryError:
        raise Planted(f"{name} is a folder, which no writer of ours makes: it is left as it is") from None


class DirectoryObjects:
    """Objects as files under a shared directory; whole files appear by a link or a rename."""

    def __init__(self, url: str, root: str) -> None:
        self.url = url
        self.root = root

    def _path(self, name: str) -> str:
        """Return the path of ``name``; raise Refused when a folder on the way is a link or not a folder."""
        path = self.root
        for part in name.split("/")[:-1]:
            path = os.path.join(path, part)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                break  # made when written; a read finds nothing
            except PermissionError:
                # A colleague's folder this user may not enter: that object alone, not the remote, is unusable.
                raise Refused(f"{path} cannot be entered by this user (permission denied): nothing under it is "
                              "read or written; ask its owner to make it readable by the team") from None
            if not stat.S_ISDIR(info.st_mode):
                raise Refused(f"{path} is not a folder (a link?): nothing under it is read, written or deleted")
        return os.path.join(self.root, *name.split("/"))

    def _others_could_write(self, name: str, info: os.stat_result) -> str | None:
        """Return why others could have written the object (it or a folder on its way), or None."""
        folders = [self.root]
        for part in name.split("/")[:-1]:
            folders.append(os.path.join(folders[-1], part))
        return others_could_write([(os.path.join(self.root, name), info)]
                                  + [(folder, os.stat(folder)) for folder in folders])

    def _read(self, name: str, most: int | None = None, private: bool = False,
              sized: Callable[[int], None] | None = None) -> tuple[memoryview, os.stat_result] | None:
        path = self._path(name)
        try:
            # Never through a link, and never blocked by a pipe someone planted: regular files only.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                         | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            kind = Planted if exc.errno == errno.ELOOP else Refused  # a link: O_NOFOLLOW refuses it
            raise kind(f"{path} cannot be opened ({exc.strerror or exc}): it is not read") from None
        # Checked before the descriptor becomes a file object: opening a folder as one raises IsADirectoryError,
        # which would read as the remote failing rather than as this one object planted.
        try:
            info = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise Planted(f"{path} is not a regular file: it is not read")
        with os.fdopen(fd, "rb") as f:
            if most is not None and info.st_size > most:
                raise Planted(f"{path} holds {info.st_size} bytes, more than the {most} it may: it is not read")
            if private:
                why = self._others_could_write(name, info)
                if why is not None:
                    raise Refused(f"{why}: a stored value is a pickle, which can run code when loaded, so without "
                                  "a secret nothing others could have written is loaded")
            if sized is not None:
                sized(info.st_size)
            try:
                return memoryview(f.read()), info
            except OSError as exc:
                raise Refused(f"{path} cannot be read ({exc.strerror or exc})") from None

    @staticmethod
    def _tag(info: os.stat_result) -> str:
        return f"{info.st_ino}-{info.st_mtime_ns}-{info.st_size}"

    def get(self, name: str, most: int | None = None, private: bool = False,
            sized: Callable[[int], None] | None = None) -> memoryview | None:
        read = self._read(name, most, private, sized)
        return None if read is None else read[0]

    def get_tagged(self, name: str, most: int | None = None) -> tuple[memoryview, str] | None:
        read = self._read(name, most)
        return None if read is None else (read[0], self._tag(read[1]))

    def exists(self, name: str) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self._path(name)).st_mode)
        except FileNotFoundError:
            return False
        except PermissionError:
            raise Refused(f"{self._path(name)} cannot be looked at by this user (permission denied)") from None

    def _shared_modes(self) -> tuple[int, int]:
        """Return the modes of the folders and the files we make below the root: shared as the root is.

        A team's folder is shared through its group (``chmod 2775``); what we make under it must not follow
        this process's umask, or a colleague could read nothing of ours (umask 077) or write nothing beside it
        (umask 022), as git's ``core.sharedRepository`` does. Folders are never made writable by others, nor
        files by anyone else: under a world-writable root (``chmod 1777``, as /tmp or a scratch area) any
        local user could otherwise delete or rename over the team's objects; its sticky bit is kept, so that
        in a folder the group may write, each member may remove only their own."""
        shared = stat.S_IMODE(os.stat(self.root).st_mode)
        return 0o700 | (shared & (0o075 | stat.S_ISGID | stat.S_ISVTX)), 0o600 | (shared & 0o044)

    def _folders(self, path: str, mode: int) -> None:
        """Make the missing folders from the root down to ``path``, each with ``mode`` whatever the umask."""
        made = self.root
        for part in os.path.relpath(path, self.root).split(os.sep):
            made = os.path.join(made, part)
            try:
                os.mkdir(made)
            except FileExistsError:
                continue  # checked by ``_path``: a link or a file there is refused
            # Never through a link put in its place meanwhile: the folder we made, opened as such.
            fd = os.open(made, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0))
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)

    def _staged(self, name: str, data: Any) -> str:
        """Write ``data`` to a new file beside the object's place; return its path."""
        folder_mode, file_mode = self._shared_modes()
        self._folders(os.path.dirname(self._path(name)), folder_mode)
        path = self._path(name)  # checked again now that its folders exist
        temp = f"{path}.{uuid.uuid4().hex}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0), file_mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, file_mode)  # the umask took bits off the mode asked for
            f.write(data)
        return temp

    def create(self, name: str, data: Any) -> str | None:
        with _denied(name):
            temp = self._staged(name, data)
            path = self._path(name)
            try:
                os.link(temp, path)  # fails if the name exists: the file system's create-only
                return self._tag(os.lstat(path))
            except FileExistsError:
                return None
            finally:
                os.unlink(temp)

    def put(self, name: str, data: Any) -> None:
        with _denied(name):
            os.replace(self._staged(name, data), self._path(name))

    def replace(self, name: str, data: Any, tag: str) -> str | None:
        # No compare-and-swap on a file system: the current file is renamed away (one renamer wins), its
        # tag checked, and the new file linked in. A race can lose an update; leases are only an economy.
        with _denied(name):
            path = self._path(name)
            aside = f"{path}.{uuid.uuid4().hex}.old"
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                return None
            try:
                if self._tag(os.lstat(aside)) != tag:
                    with contextlib.suppress(FileExistsError):
                        os.link(aside, path)  # not ours to replace: put back
                    return None
                temp = self._staged(name, data)
                try:
                    os.link(temp, path)
                    return self._tag(os.lstat(path))
                except FileExistsError:
                    return None
                finally:
                    os.unlink(temp)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(aside)

    def delete(self, name: str) -> None:
        with _denied(name), contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name))

    def list(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """Yield the objects under ``prefix``; raise Refused when its folder is a link or not a folder (os.walk
        would list what the link names, somewhere else, which nothing else here reads or deletes), and, once
        the rest is yielded, when a folder under it could not be listed (a link, or one we may not read)."""
        return self._walk(prefix, staged=False)

    def staged(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """Yield the files under ``prefix`` named as ``_staged`` and ``replace`` name theirs (``.tmp``, ``.old``):
        what a writer killed before it linked or removed them leaves behind. Refused as ``list``."""
        return self._walk(prefix, staged=True)

    def _walk(self, prefix: str, staged: bool) -> Iterator[tuple[str, int, float]]:
        top = self._path(prefix.rstrip("/")) if prefix else self.root
        try:
            info = os.lstat(top)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            raise Refused(f"{top} is not a folder (a link?): nothing under it is listed, read or deleted")
        unlisted: list[str] = []
        # os.walk passes over both silently; a caller that counts on a whole listing (what no manifest names
        # is deleted) must hear of them.
        for folder, dirs, files in os.walk(top, onerror=lambda exc: unlisted.append(
                f"{exc.filename} cannot be listed ({exc.strerror or exc})")):
            unlisted.extend(f"{os.path.join(folder, d)} is a link" for d in dirs
                            if os.path.islink(os.path.join(folder, d)))
            for file in files:
                if file.endswith((".tmp", ".old")) != staged:
                    continue
                path = os.path.join(folder, file)
                with contextlib.suppress(FileNotFoundError):
                    info = os.lstat(path)
                    if stat.S_ISREG(info.st_mode):
                        yield os.path.relpath(path, self.root).replace(os.sep, "/"), info.st_size, info.st_mtime
        if unlisted:
            raise Refused(f"{'; '.join(unlisted[:3])}{' ...' if len(unlisted) > 3 else ''}: what is under it was "
                          "not listed")


def open_objects(url: str, create: bool = True) -> ObjectStore:
    """Return the object store a remote URL names; raise ValueError for one that cannot be used.

    ``create``: make a shared folder that is not there yet (a memoized function's first store). Without it (upkeep),
    a folder that is missing or is not a folder is a ValueError: a misspelt path must not become an empty remote.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"a file:// remote must name a local path (file:///mnt/team/cache), not {url!r}")
        return DirectoryObjects(url, _folder(unquote(parts.path), create))
    if parts.scheme in ("", None) and url.startswith("/"):
        return DirectoryObjects(url, _folder(url, create))
    if parts.scheme in ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "azure") and parts.netloc:
        try:
            return CloudObjects(url)
        except ImportError:
            raise ValueError("a remote on object storage needs obstore: pip install 'notebook_memo[remote]'") \
                from None
    raise ValueError(f"cannot use the remote {url!r}: give s3://bucket/prefix, gs://..., az://... or "
                     "file:///shared/directory")


def _folder(root: str, create: bool) -> str:
    """Return ``root``, a shared folder: made when missing if ``create``, else a ValueError saying what is there."""
    if create:
        os.makedirs(root, exist_ok=True)
    elif not os.path.exists(root):
        raise ValueError(f"no remote folder at {root}: check the path (it is made by the first result stored there, "
                         "never by upkeep)")
    elif not os.path.isdir(root):
        raise ValueError(f"{root} is not a folder: give the remote's shared folder (file:///mnt/team/cache)")
    return root

"""Writing without losing anything: atomic files, staged folders, and folders the lab can prove are its own.

Every folder the lab writes as an output (a run, a sweep, a study) holds a marker file, `.lab.json`, naming
its kind and every entry the lab put in it. The lab deletes or replaces a folder only when the marker is there
and the folder holds nothing else (`check_out`), and never the current directory, the home directory, a
filesystem root or a folder holding one of them.

One lab command at a time writes to a destination `X`: it holds the lock file `.X.lock` beside `X`
(`exclusive`), outside the folder it guards, so a command that replaces `X` cannot delete the lock of another.
A finished folder is written under a hidden sibling `.X.partial-*`, marked, then swapped in (`staged`): the old
`X` is renamed `.X.old-*` and deleted after the swap, so a kill at any moment leaves the old `X` or the new one
whole, or, for the instant between the two renames, a marked `.X.partial-*` and no `X`. The next command to that destination finds what such a kill left
(`recover`): it moves a finished `.X.partial-*` into place when `X` is missing, and deletes the rest, saying
so in one line each.

Files and folders get the permissions of the user's umask, like any other file they write.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from games.fields import ConfigError

MARKER = ".lab.json"
FORMAT = 1


def say(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr)


@functools.cache
def umask() -> int:
    """The process's umask (read from /proc, else set and restored once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_created(path: Path, directory: bool) -> None:
    """mkstemp and mkdtemp make 0600 files and 0700 folders: give them what `open` and `mkdir` would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp"):
    """Yield a temporary path beside `path`; it replaces `path` only if the block completes."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    _as_created(Path(tmp), directory=False)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# -- whose folder ------------------------------------------------------------------------------------


def marker(folder: Path) -> dict | None:
    """The lab's marker of `folder`, or None when it has none (or one the lab did not write)."""
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and isinstance(data.get("kind"), str) and isinstance(data.get("entries"), list)
    return data if ok else None


def mark(folder: Path, kind: str, entries: list[str] | None = None) -> None:
    """Write `folder`'s marker: its kind and the entries the lab wrote (default: every entry now in it)."""
    names = sorted(p.name for p in folder.iterdir() if p.name != MARKER) if entries is None else sorted(set(entries))
    write_text(folder / MARKER, json.dumps({"lab": "the lab wrote this folder", "format": FORMAT, "kind": kind,
                                            "entries": names}, indent=1) + "\n")


def add_entries(folder: Path, names: list[str]) -> None:
    """Record more entries the lab wrote into one of its folders (a report); nothing when `folder` has no marker."""
    data = marker(folder)
    if data is not None:
        mark(folder, data["kind"], [*data["entries"], *names])


def _shown(path: Path) -> str:
    return repr(str(path))


def _protected(path: Path) -> str | None:
    """What `path` is or holds that the lab never deletes: the current directory, home, a filesystem root."""
    resolved = path.resolve()
    if resolved == Path(resolved.anchor) or os.path.ismount(resolved):
        return "a filesystem root"
    for name, other in (("the current directory", Path.cwd()), ("the home directory", Path.home())):
        other = other.resolve()
        if resolved == other:
            return name
        if resolved in other.parents:
            return f"a folder holding {name}"
    return None


def _writable_parent(path: Path) -> None:
    """The nearest existing folder above `path` is a folder the lab may write in."""
    for parent in path.resolve().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out {_shown(path)}: {_shown(parent)} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"--out {_shown(path)}: cannot write in {_shown(parent)} (permission denied)")
            return


def check_destination(out: Path) -> None:
    """Refuse, with one line, a destination the lab may never write to: a protected folder (module doc), a file, a
    symbolic link, or one below a file or a folder it may not write in."""
    out = Path(out)
    protected = _protected(out)
    if protected:
        raise ConfigError(f"--out {_shown(out)} is {protected}; the lab writes a new folder or replaces one of its own: "
                          f"choose a new folder, e.g. --out runs/a")
    _writable_parent(out)
    if out.is_symlink():
        raise ConfigError(f"--out {_shown(out)} is a symbolic link; give the folder it points to")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {_shown(out)} is a file, not a folder")


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse, with one line, a destination the lab may not write a new folder to, or (`overwrite`) replace."""
    out = Path(out)
    check_destination(out)
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ConfigError(f"--out {_shown(out)} exists and is not empty; pass --overwrite to replace it")
    check_own(out)


def check_own(folder: Path) -> dict:
    """`folder`'s marker when the lab wrote `folder` and everything in it, else a ConfigError naming what is not its."""
    data = marker(folder)
    if data is None:
        raise ConfigError(f"--out {_shown(folder)} was not written by the lab (no {MARKER} in it); it deletes only its own "
                          f"folders: move it away or choose another --out")
    foreign = sorted(p.name for p in folder.iterdir() if p.name != MARKER and p.name not in data["entries"])
    if foreign:
        raise ConfigError(f"--out {_shown(folder)} holds {foreign[0]!r}, which the lab did not write; it deletes only what "
                          f"it wrote: move that away or choose another --out")
    return data


def remove(folder: Path) -> None:
    """Delete one of the lab's folders (check_own first): renamed `.X.old-*` at once, so a kill mid-way leaves that
    name for the next command to finish (`recover`), never half of `X`."""
    old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-"))
    os.replace(folder, old)  # an empty folder of that name is replaced
    shutil.rmtree(old)


# -- one writer per destination ------------------------------------------------------------------------


def lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def exclusive(out: str | Path):
    """Hold `.X.lock` beside `X` for the block; another lab command writing to `X` is refused, not interleaved.

    The lock file is removed on the way out; a command that opened it in between finds it replaced and tries again.
    """
    import fcntl

    out = Path(out)
    path = lock_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"another lab command is writing to {_shown(out)}; wait for it or choose another --out") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        os.close(fd)


def recover(out: Path, log: Callable[[str], None] = say) -> None:
    """What a killed command left beside `X` (module doc); call it holding `exclusive(X)`, so nothing else is live."""
    out = Path(out)
    if not out.parent.is_dir():
        return
    for old in sorted(out.parent.glob(f".{out.name}.old-*")):
        shutil.rmtree(old, ignore_errors=True)
        log(f"deleted {_shown(old)}, the replaced {out.name} an interrupted command was deleting")
    for partial in sorted(out.parent.glob(f".{out.name}.partial-*")):
        if marker(partial) is not None and not out.exists():
            os.replace(partial, out)
            log(f"recovered {_shown(out)}: it was finished but not yet in place when its command was interrupted")
        else:
            shutil.rmtree(partial, ignore_errors=True)
            log(f"deleted {_shown(partial)}, left unfinished by an interrupted command")


def _free_name(out: Path) -> Path:
    n = 2
    while (out.parent / f"{out.name}-{n}").exists():
        n += 1
    return out.parent / f"{out.name}-{n}"


@contextlib.contextmanager
def staged(out: str | Path, overwrite: bool = False, kind: str = "run"):
    """A hidden sibling folder to write into; marked and swapped in for `out` only if the block completes.

    Holds `exclusive(out)` throughout: the destination is checked before the block (and its parent created, so a
    bad `--out` fails before any work) and again at the swap. Should something other than the lab have written
    `out` in between, it is kept and this folder is moved to `out-2` (or the next free name), with a ConfigError.
    """
    out = Path(out)
    check_out(out, overwrite)
    with exclusive(out):
        recover(out)
        check_out(out, overwrite)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
        _as_created(staging, directory=True)
        try:
            yield staging
            mark(staging, kind)
            try:
                check_out(out, overwrite)
            except ConfigError as error:
                moved = _free_name(out)
                os.replace(staging, moved)
                raise ConfigError(f"{error} (it changed while this command worked); this command's results are in "
                                  f"{_shown(moved)}") from None
            old = None
            if out.exists() and any(out.iterdir()):
                old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
                os.replace(out, old)
            os.replace(staging, out)  # an empty `out` is replaced
            if old is not None:
                shutil.rmtree(old)
        finally:
            if staging.exists():
                shutil.rmtree(staging)

"""Writing outputs so a crash never leaves half of one, and ending a script with one readable error line.

Every script imports these; none of it is part of the ADELIE method.

- `atomic_file(path)`: write a file under a temporary name in the same directory, fsync it, then rename it over
  `path`. A reader (the next pipeline stage, a resumed run) sees the old file or the complete new one, never half.
- `atomic_dir(path)`: the same for a directory (an export such as OUT_DIR/final/): it is written as `path.tmp/`,
  every file fsynced, then swapped in with one rename. Replacing an existing `path` uses Linux's
  renameat2(RENAME_EXCHANGE), so `path` holds either the old complete directory or the new one at every moment;
  where that call is missing, the old directory is first renamed to `path.old/` and a crash between the two renames
  leaves no `path` at all (never a partial one).
- `read_appendable_jsonl(path)`: the complete lines of a JSON-lines file that a killed run was appending to,
  with a torn last line cut off (counted) so new lines start clean; one resumable per-rank writer format for
  feedback.py, evaluate.py and llm.py.
- `take_lock(out_dir)` / `release_lock()`: OUT_DIR/LOCK (host, pid), so a second run on the same directory refuses at
  once; removed on every way out; a lock left by a killed run is named, and removed only when asked.
- `run_main(main)`: run a script's main() and turn an exception into ONE line, `error: ...`, and exit status 1,
  printed once under torchrun (see `run_main`). ADELIE_DEBUG=1 shows the full traceback instead.

No torch import here: the light scripts (data.py, evaluate.py) use it too.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path beside `path`; when the block ends without an exception, fsync it and rename it to
    `path`. On an exception the temporary file is removed and `path` is left as it was.

        with atomic_file(out / "ie_feedback.json") as tmp:
            tmp.write_text(json.dumps(pairs))"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)  # the rename itself survives a power cut


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 with RENAME_EXCHANGE); False where the call is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@contextlib.contextmanager
def atomic_dir(path):
    """Yield an empty temporary directory `path.tmp/`; when the block ends without an exception, fsync every file
    in it and put it in place of `path` (an existing `path` is replaced as a whole: anything else in it goes).
    A `path.tmp/` left by a crashed writer is removed first; on an exception the new one is removed."""
    path = Path(path)
    tmp, old = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                fsync_path(f)
        fsync_path(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists() and _exchange(tmp, path):
        shutil.rmtree(tmp)  # now holds the old directory
    else:
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    fsync_path(path.parent)


# ----------------------------------------------------------------------------------------------------------------
# OUT_DIR/LOCK: one run per output directory (training.claim_out_dir takes it on rank 0)

_held_lock: Path | None = None  # the lock this process took, removed by release_lock


def release_lock() -> None:
    """Remove OUT_DIR/LOCK if this process took it (on every way out: training.end_process, run_main's error line,
    a plain sys.exit)."""
    global _held_lock
    lock, _held_lock = _held_lock, None
    with contextlib.suppress(OSError, ValueError):
        if lock and json.loads(lock.read_text()).get("pid") == os.getpid():  # still ours
            lock.unlink()


atexit.register(release_lock)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return True


def take_lock(out_dir: Path, clear_stale: bool) -> str | None:
    """Create OUT_DIR/LOCK (host, pid, start time) exclusively; an error message when another run holds it."""
    global _held_lock
    lock = out_dir / "LOCK"
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            other = json.loads(lock.read_text())
        except (OSError, ValueError):
            other = {}
        host, pid = other.get("host", "?"), other.get("pid", -1)
        if host == me["host"] and isinstance(pid, int) and pid > 0 and not pid_alive(pid):
            if clear_stale:
                print(f"removing a stale lock {lock} (pid {pid} on {host}, started {other.get('started')}, no "
                      f"longer running)", flush=True)
                lock.unlink(missing_ok=True)
                return take_lock(out_dir, clear_stale=False)
            return (f"{lock} is left by a run that is no longer running (pid {pid} on {host}, started "
                    f"{other.get('started')}); if nothing else writes to {out_dir}, pass --clear_stale_lock")
        where = "on this host" if host == me["host"] else f"on host {host} (its state cannot be checked from here)"
        return (f"{out_dir} is in use by another run (pid {pid} {where}, started {other.get('started')}; "
                f"lock file {lock}); choose another --out_dir, or wait for that run to end")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(me))
    _held_lock = lock
    return None


# Exceptions that come from the inputs (a file, a flag): every rank reads the same inputs and fails the same way,
# so under torchrun only rank 0 prints them. Any other exception is printed by each rank that raised it.
INPUT_ERRORS = (ValueError, KeyError, OSError, UnicodeError, TypeError, IndexError)
# What gloo / NCCL say (sometimes as a plain RuntimeError) when another rank has died in a collective.
PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "remote process exited")


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message (which names the file, line and field where the project raised it),
    prefixed with the exception's type when the message alone would not say what went wrong."""
    msg = " ".join(str(exc).split())
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 ({exc.reason} at byte {exc.start}); expected UTF-8 text"
    if isinstance(exc, KeyError):
        return f"missing field {msg}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or msg}"
    return msg if msg else type(exc).__name__


def run_main(main, argv=None) -> None:
    """Run `main(argv)`; an exception becomes one line `error: ...` on stderr and exit status 1.

    Under torchrun: rank 0 prints errors that come from the inputs (INPUT_ERRORS: all ranks hit them alike);
    other exceptions are printed by each rank that raised them, with its rank, except torch.distributed's
    DistError and PEER_GONE errors, which a rank gets when a peer died: the rank that failed prints the cause. With ADELIE_DEBUG=1 the
    exception propagates with its full traceback."""
    try:
        main(argv)
    except SystemExit:
        raise
    except BaseException as exc:
        if os.environ.get("ADELIE_DEBUG") == "1" or isinstance(exc, KeyboardInterrupt):
            raise
        rank = int(os.environ.get("RANK", "0"))
        if any(c.__name__ == "DistError" for c in type(exc).__mro__) or any(m in str(exc) for m in PEER_GONE):
            pass  # a collective broken by a peer's death: that rank prints its own line (or torchrun names it)
        elif isinstance(exc, INPUT_ERRORS):
            if rank == 0:
                print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
        else:
            where = f" (rank {rank})" if "RANK" in os.environ else ""
            print(f"error{where}: {type(exc).__name__}: {one_line(exc)} [ADELIE_DEBUG=1 shows the traceback]",
                  file=sys.stderr, flush=True)
        release_lock()
        sys.stdout.flush()
        os._exit(1)  # as training.end_process: no interpreter teardown while process-group threads may run


def read_appendable_jsonl(path, valid=None) -> tuple[list[tuple[int, dict]], int]:
    """([(line number, object)], torn): the lines of an append-only JSON-lines file, made safe to append to again.

    A run killed mid-write leaves a torn last line (no newline, not a complete JSON line): it is cut off the file and
    counted (torn = 1), so the next append starts a fresh line and the caller redoes that entry. A complete last
    line without its newline gets one.
    A broken line anywhere else is corruption: ValueError naming the file and line. `valid(obj)` may raise
    ValueError to reject an object as broken too. Run by one process per file, before anyone appends to it."""
    path = Path(path)
    if not path.exists():
        return [], 0
    raw = path.read_bytes()
    lines = raw.split(b"\n")  # the last piece is b"" when the file ends with a newline
    rows, offset = [], 0
    for lineno, line in enumerate(lines, 1):
        is_last = lineno == len(lines)
        if line.strip():
            try:
                obj = json.loads(line)
                if valid is not None:
                    valid(obj)
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                if not is_last:
                    raise ValueError(f"{path}:{lineno}: not a JSON line ({e}); a torn write can only be "
                                     f"the last line") from None
                with open(path, "r+b") as f:
                    f.truncate(offset)
                return rows, 1
            rows.append((lineno, obj))
            if is_last:
                with open(path, "ab") as f:
                    f.write(b"\n")
        offset += len(line) + 1
    return rows, 0

"""Run Python code blocks in order, in one fresh `__main__` namespace, and record each block's output.

    python tests/tooling/runner.py PLAN.json RESULT.json

PLAN.json is {"file": path shown as __file__, "blocks": [{"code", "filename", "firstline", "label"}, ...],
"watch": optional folder whose files the run reads are reported, "ignore": folders under it not to report}.
RESULT.json gets {"outputs": [stdout of each block], "error": null or {"block", "label", "traceback"},
"seconds": time spent in the code itself, "reads": [files under "watch" that the code opened]}.

This is how the test suite runs a snippet (its sections are the blocks) and a page (its Python code
blocks, in page order). It runs in a fresh interpreter started by the tests, or in a child forked from
the harness's fork server (forkserver.py), which calls execute() the same way. It imports nothing from
this repository, puts the working directory (not this folder) first on sys.path, and refuses network
connections to anything but this machine, so that no snippet can download data. Standard library only.
"""
from __future__ import annotations

import io
import json
import os
import socket
import sys
import time
import traceback
import types

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}


class NetworkBlocked(OSError):
    pass


def _host_of(address) -> str | None:
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None  # AF_UNIX paths and the like are local


def _guard_network() -> None:
    """Refuse connections that leave this machine (the book never downloads anything)."""
    def check(address):
        host = _host_of(address)
        if host is not None and host not in LOCAL_HOSTS and not host.startswith("127."):
            raise NetworkBlocked(f"network access to {address!r} is blocked: snippets must not download anything")

    real_connect, real_connect_ex, real_sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto

    def connect(self, address):
        check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(address)
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        check(args[-1])
        return real_sendto(self, data, *args)

    socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else (host or "")
        check((name, 0))
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


class _Tee(io.TextIOBase):
    """Writes to the real stdout (so the test log shows it) and to the current block's buffer."""

    def __init__(self, real):
        self.real, self.buffer_ = real, io.StringIO()

    def write(self, text):
        self.real.write(text)
        return self.buffer_.write(text)

    def flush(self):
        self.real.flush()

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"

    def take(self) -> str:
        text, self.buffer_ = self.buffer_.getvalue(), io.StringIO()
        return text


def _record_reads(watch: str, ignore: list[str]) -> set[str]:
    """Files under `watch` that the code opens (an audit hook sees every open() of Python code)."""
    reads: set[str] = set()
    root = os.path.realpath(watch) + os.sep
    skip = tuple(os.path.realpath(p) + os.sep for p in ignore)

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path = os.fsdecode(args[0])
            path = os.path.normpath(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
            if path.startswith(root) and not path.startswith(skip):
                reads.add(path)

    sys.addaudithook(hook)
    return reads


def _where(exc: BaseException, plan: dict) -> str | None:
    """file:line of the innermost frame of the failure that lies in the code being run (not in a library)."""
    files = {b["filename"] for b in plan["blocks"]}
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in files:
            found = f"{frame.filename}:{frame.lineno}"
    return found


def run(plan: dict) -> dict:
    _guard_network()
    sys.path[0] = os.getcwd()  # as for a script run from its folder: never this harness's folder
    reads = _record_reads(plan["watch"], plan.get("ignore", [])) if plan.get("watch") else set()
    main = types.ModuleType("__main__")
    main.__file__ = plan["file"]
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    sys.argv = [plan["file"]]
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    outputs: list[str] = []
    error = None
    start = time.perf_counter()
    for index, block in enumerate(plan["blocks"]):
        # Pad with blank lines so that tracebacks show the line numbers of the real file.
        source = "\n" * (block["firstline"] - 1) + block["code"]
        try:
            exec(compile(source, block["filename"], "exec"), main.__dict__)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt count as failures too
            if isinstance(exc, SystemExit) and exc.code in (None, 0):
                outputs.append(tee.take())  # a clean exit ends the script, as it would for a reader
                break
            outputs.append(tee.take())
            error = {"block": index, "label": block["label"], "where": _where(exc, plan),
                     "traceback": "".join(traceback.format_exception(exc))}
            break
        outputs.append(tee.take())
    seconds = time.perf_counter() - start
    sys.stdout = tee.real
    return {"outputs": outputs, "error": error, "seconds": seconds, "reads": sorted(reads)}


def execute(plan_path: str, result_path: str) -> int:
    """Run the plan in PLAN.json, write RESULT.json, return the exit status."""
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    result = run(plan)
    sys.stdout.flush()
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)
    if result["error"]:
        sys.stderr.write(result["error"]["traceback"])
    sys.stderr.flush()
    return 1 if result["error"] else 0


if __name__ == "__main__":
    # os._exit: skip interpreter teardown, where stray threads of a failed block could hang
    os._exit(execute(sys.argv[1], sys.argv[2]))

"""Run Python code blocks in order, in one fresh `__main__` namespace, and record each block's output.

    python tests/tooling/runner.py PLAN.json RESULT.json

PLAN.json is {"file": path shown as __file__, "blocks": [{"code", "filename", "firstline", "label"}, ...]}.
RESULT.json gets {"outputs": [stdout of each block], "error": null or {"block", "label", "traceback"}}.

This is how the test suite runs a snippet (its sections are the blocks) and a page (its Python code
blocks, in page order). It runs in a fresh interpreter started by the tests, imports nothing from this
repository, and refuses network connections to anything but this machine, so that no snippet can
download data. Standard library only.
"""
from __future__ import annotations

import io
import json
import socket
import sys
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


def run(plan: dict) -> dict:
    _guard_network()
    main = types.ModuleType("__main__")
    main.__file__ = plan["file"]
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    sys.argv = [plan["file"]]
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    outputs: list[str] = []
    error = None
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
            error = {"block": index, "label": block["label"],
                     "traceback": "".join(traceback.format_exception(exc))}
            break
        outputs.append(tee.take())
    sys.stdout = tee.real
    return {"outputs": outputs, "error": error}


if __name__ == "__main__":
    plan_path, result_path = sys.argv[1], sys.argv[2]
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    result = run(plan)
    sys.stdout.flush()
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False)
    if result["error"]:
        sys.stderr.write(result["error"]["traceback"])
    # os._exit: skip interpreter teardown, where stray threads of a failed block could hang
    sys.stderr.flush()
    import os
    os._exit(1 if result["error"] else 0)

"""A fork server: one interpreter per test worker that imports the heavy libraries once (torch, numpy,
matplotlib, scikit-learn, mnist1d) and forks a child for every run, so that a run does not pay 2–7 s of
interpreter start-up and imports.

    python tests/tooling/forkserver.py       (started by ForkServer below; speaks JSON lines on stdin/stdout)

Each child is made to look like a fresh interpreter where it matters: a fresh `__main__` (runner.py),
its own working directory, environment, stdout/stderr files and process group, the network guard,
sys.path as the server had it before importing anything (with the working directory first), and fresh
random seeds for `random`, NumPy and PyTorch, as a new interpreter would have. Whatever a run changes
(default dtype, RNG state, thread count, rcParams, os.environ, sys.path, files in its folder) dies with
the child. The server itself never runs book code. A child that crashes or hangs is reported (and a hung
one killed with its process group) and the server goes on. The server is started with exactly the
environment of the runs it serves: libraries read some variables only when imported (thread counts,
kernel pins, MATPLOTLIBRC), so runs with another environment get another server (or a fresh interpreter).
CUDA does not survive a fork: CUDA runs always use a fresh interpreter. Standard library only, plus
whatever of the preloaded libraries is installed.
"""
from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PRELOAD = ("numpy", "torch", "matplotlib.pyplot", "scipy", "sklearn.datasets", "sklearn.model_selection",
           "sklearn.linear_model", "mnist1d.data")


# ---------------------------------------------------------------- server side

def _reseed() -> None:
    """Fresh, unpredictable RNG states, as a new interpreter starts with."""
    import random
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].seed()


def _child(request: dict, base_path: list[str], runner) -> int:
    os.setsid()                                   # its own process group, killed as a whole on a hang
    os.chdir(request["cwd"])
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in (null, out, err):
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[:] = base_path
    sys.argv = [request["plan"]]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _reseed()
    return runner.execute(request["plan"], request["result"])


def _wait(pid: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            if fd is not None:
                os.close(fd)
            return {"returncode": None, "timed_out": True}
        if fd is not None:
            select.select([fd], [], [], left)
        else:
            time.sleep(min(left, 0.01))
    if fd is not None:
        os.close(fd)
    try:
        os.killpg(pid, signal.SIGKILL)            # what the child left running (its own process group)
    except (ProcessLookupError, PermissionError):
        pass
    return {"returncode": os.waitstatus_to_exitcode(status), "timed_out": False}


def serve() -> None:
    base_path = list(sys.path)
    base_path[0] = ""                             # replaced by the run's folder (runner.run)
    import runner  # noqa: E402  (this folder, before sys.path is restored for the children)
    loaded = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:
            pass
    sys.stdout.write(json.dumps({"ready": True, "preloaded": loaded}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = _child(request, base_path, runner)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                os._exit(code)
        reply = _wait(pid, request["timeout"])
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


# ---------------------------------------------------------------- client side (the test worker)

class ForkServer:
    """One server process, started with a given environment; runs are served one at a time."""

    def __init__(self, env: dict[str, str]):
        self.env = dict(env)
        self.lock = threading.Lock()
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env,
                                     text=True, encoding="utf-8")
        hello = self.proc.stdout.readline()
        if not hello:
            raise RuntimeError("the fork server did not start")
        self.preloaded = json.loads(hello)["preloaded"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, plan: Path, result: Path, cwd: Path, stdout: Path, stderr: Path, timeout: float) -> dict:
        request = {"plan": str(plan), "result": str(result), "cwd": str(cwd), "stdout": str(stdout),
                   "stderr": str(stderr), "env": self.env, "timeout": timeout}
        with self.lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("the fork server died")
        return json.loads(reply)

    def close(self) -> None:
        if self.alive():
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


if __name__ == "__main__":
    serve()

"""Shared fixtures. The conventions the tests enforce are described in README.md (贡献指南)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tooling.book import ROOT


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> dict:
    """`mkdocs build --strict` once per session; tests of the built site share it."""
    pytest.importorskip("mkdocs", reason="the site's packages are not installed (run `make test`)")
    if os.environ.get("BOOK_BUILT_SITE"):  # for iterating on the browser tests: reuse a site built by hand
        return {"dir": Path(os.environ["BOOK_BUILT_SITE"]), "log": "", "returncode": 0, "seconds": 0.0}
    site = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | {"CUDA_VISIBLE_DEVICES": "", "NO_MKDOCS_2_WARNING": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8")
    return {"dir": site, "log": proc.stdout + proc.stderr, "returncode": proc.returncode,
            "seconds": time.perf_counter() - start}

"""The offline edition (`make offline`): the site built with Material's offline plugin, which works from
file:// with no server (search included), packed as one zip.

    python -m tests.tooling.offline [ZIP]      # default dist/dl-book-offline.zip
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.tooling.sources import ROOT

DEFAULT_ZIP = ROOT / "dist" / "dl-book-offline.zip"


def build(site_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env |= {"BOOK_OFFLINE": "true", "NO_MKDOCS_2_WARNING": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8")


def pack(site_dir: Path, zip_path: Path) -> Path:
    """Zip the site under one top-level folder, so that unpacking gives dl-book/index.html."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(site_dir, Path(tmp) / "dl-book")
        archive = shutil.make_archive(str(zip_path.with_suffix("")), "zip", tmp, "dl-book")
    return Path(archive)


if __name__ == "__main__":
    target = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_ZIP
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        proc = build(site)
        if proc.returncode:
            sys.exit(proc.stdout + proc.stderr)
        archive = pack(site, target)
    print(f"offline edition: {archive.relative_to(ROOT) if archive.is_relative_to(ROOT) else archive} "
          f"({archive.stat().st_size / 1e6:.1f} MB); unzip it and open dl-book/index.html")

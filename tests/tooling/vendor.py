"""Refresh the vendored front-end files in docs/assets/vendor/ from the npm registry.

    python -m tests.tooling.vendor          # download the pinned versions and rewrite the folder
    python -m tests.tooling.vendor --check  # verify the folder against vendor.json (used by the tests)

Only the files the site needs are copied (never a package's README or docs, which would become pages),
with each package's license as LICENSE.txt. vendor.json records name, version, license and sha256 of
every file, so a hand edit of a vendored file is caught by the test suite.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "docs" / "assets" / "vendor"
MANIFEST = VENDOR / "vendor.json"

# name -> (pinned version, {glob inside the package: destination folder under vendor/<name>/})
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "katex": ("0.16.47", {
        "dist/katex.min.js": "",
        "dist/katex.min.css": "",
        "dist/contrib/auto-render.min.js": "",
        "dist/fonts/*.woff2": "fonts",
    }),
    "mermaid": ("11.17.2", {
        "dist/mermaid.min.js": "",
    }),
    # lets the search worker run from file:// in the offline edition (Material's offline plugin
    # would otherwise load it from unpkg.com)
    "iframe-worker": ("1.0.4", {
        "shim/index.js": "",
    }),
}


def _woff2_only(css: str) -> str:
    """KaTeX's CSS lists woff2, woff and ttf for each font; every browser we support reads woff2,
    so we ship only those files and drop the other two sources (which would be broken links)."""
    return re.sub(r',\s*url\([^)]*\.(?:woff|ttf)\) format\("(?:woff|truetype)"\)', "", css)


TRANSFORMS = {"katex/katex.min.css": _woff2_only}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refresh() -> None:
    manifest: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for name, (version, files) in PACKAGES.items():
            out = subprocess.run(
                ["npm", "pack", f"{name}@{version}", "--pack-destination", tmp, "--silent"],
                check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
            unpack = tmp_path / name
            with tarfile.open(tmp_path / out) as tar:
                tar.extractall(unpack, filter="data")
            pkg = unpack / "package"
            meta = json.loads((pkg / "package.json").read_text(encoding="utf-8"))
            dest_root = VENDOR / name
            shutil.rmtree(dest_root, ignore_errors=True)
            dest_root.mkdir(parents=True)
            for pattern, sub in files.items():
                matches = sorted(pkg.glob(pattern))
                if not matches:
                    sys.exit(f"{name}@{version}: no file matches {pattern!r}")
                for src in matches:
                    dest = dest_root / sub / src.name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dest)
            lic = next(p for p in pkg.iterdir() if p.name.upper().startswith("LICEN"))
            shutil.copyfile(lic, dest_root / "LICENSE.txt")
            for rel, fn in TRANSFORMS.items():
                if rel.startswith(name + "/"):
                    path = VENDOR / rel
                    path.write_text(fn(path.read_text(encoding="utf-8")), encoding="utf-8")
            manifest[name] = {
                "version": meta["version"],
                "license": meta.get("license"),
                "homepage": meta.get("homepage"),
                "files": {str(p.relative_to(VENDOR)): sha256(p)
                          for p in sorted(dest_root.rglob("*")) if p.is_file()},
            }
            print(f"{name}@{meta['version']} ({meta.get('license')}): "
                  f"{len(manifest[name]['files'])} files")
    MANIFEST.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def check() -> list[str]:
    """Problems with the vendored folder, as messages; empty when it matches vendor.json."""
    if not MANIFEST.is_file():
        return [f"{MANIFEST.relative_to(ROOT)} is missing: run `make vendor`"]
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    problems = []
    listed = set()
    for name, entry in manifest.items():
        pinned = PACKAGES.get(name, (None,))[0]
        if entry["version"] != pinned:
            problems.append(f"{name}: vendor.json has {entry['version']}, tests/tooling/vendor.py pins {pinned}")
        for rel, digest in entry["files"].items():
            listed.add(rel)
            path = VENDOR / rel
            if not path.is_file():
                problems.append(f"docs/assets/vendor/{rel} is missing: run `make vendor`")
            elif sha256(path) != digest:
                problems.append(f"docs/assets/vendor/{rel} differs from the npm package: run `make vendor`")
    for path in VENDOR.rglob("*"):
        rel = str(path.relative_to(VENDOR))
        if path.is_file() and path != MANIFEST and rel not in listed:
            problems.append(f"docs/assets/vendor/{rel} is not recorded in vendor.json")
    return problems


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        issues = check()
        print("\n".join(issues) or "vendored files match vendor.json")
        sys.exit(1 if issues else 0)
    refresh()

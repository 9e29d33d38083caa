"""The results files of the reproduction case studies (docs/<part>/results/<name>.json, written by
`make reproduce`) are well formed: full mode, complete provenance, at least 3 seeds, one run per seed for
every configuration, finite numbers, accuracies in [0, 1], curves that end at the reported value.

The claims a page makes about these numbers (paper vs ours, within what tolerance) are asserted by the
notebook itself, which the snippet tests run against the committed file; the notebook also re-runs one row
in full and compares it with the file, so a stale or edited file fails there.
"""
from __future__ import annotations

import copy
import json
import math
from datetime import datetime
from itertools import product

import pytest

from tests.tooling.sources import rel
from tests.tooling.reproduce import COMMAND, case_studies, name_of, results_file

PROVENANCE = {"command", "mode", "config", "seeds", "python", "torch", "numpy", "device", "cpu",
              "cpu_count", "torch_threads", "platform", "date", "wall_time_s"}
DATA_PACKAGES = ("mnist1d",)  # a case study that imports one of these records its version too


def required_provenance(notebook) -> set[str]:
    source = notebook.read_text(encoding="utf-8")
    return PROVENANCE | {p for p in DATA_PACKAGES if f"import {p}" in source or f"from {p}" in source}


def is_factor(key: str, value, config: dict) -> bool:
    """Whether a run's entry names its configuration rather than a result: a label (a string, an int, a bool),
    or a number the config lists under the plural name (weight_decay = 2.0 among config["weight_decays"])."""
    if isinstance(value, (dict, list)):
        return False  # curves, spectra: results
    if isinstance(value, float):
        return isinstance(config.get(key + "s"), list) and value in config[key + "s"]
    return True


def problems_in(data: dict, name: str, required: set[str] = PROVENANCE) -> list[str]:
    """Everything wrong with one results file, as messages (empty when it is well formed)."""
    problems = []
    if data.get("experiment") != name:
        problems.append(f"experiment is {data.get('experiment')!r}, expected {name!r}")
    prov = data.get("provenance", {})
    if missing := required - prov.keys():
        problems.append(f"provenance lacks {sorted(missing)}")
        return problems
    if prov["mode"] != "full":
        problems.append(f"mode is {prov['mode']!r}: only a full run may be committed")
    if not str(prov["command"]).startswith(COMMAND):
        problems.append(f"command {prov['command']!r} is not `{COMMAND}`")
    try:
        if datetime.fromisoformat(prov["date"]).tzinfo is None:
            problems.append(f"date {prov['date']!r} has no time zone")
    except (TypeError, ValueError):
        problems.append(f"date {prov['date']!r} is not ISO 8601")
    if not (isinstance(prov["wall_time_s"], (int, float)) and prov["wall_time_s"] > 0):
        problems.append(f"wall_time_s {prov['wall_time_s']!r} is not a positive number")
    seeds = prov["seeds"]
    if len(set(seeds)) != len(seeds) or len(seeds) < 3 or prov["config"].get("seeds") != seeds:
        problems.append(f"seeds {seeds!r}: need at least 3 distinct seeds, the same as config.seeds")

    runs = data.get("runs", [])
    config = prov["config"]
    factors = sorted({k for r in runs for k, v in r.items() if k != "seed" and is_factor(k, v, config)})
    seeds_of: dict[tuple, list] = {}  # configuration -> the seeds it ran with
    for r in runs:
        seeds_of.setdefault(tuple(r.get(k) for k in factors), []).append(r.get("seed"))
    levels = [sorted({r.get(k) for r in runs}, key=str) for k in factors]
    if set(seeds_of) != set(product(*levels)):
        problems.append(f"runs do not cover the full grid of {factors}")
    for key, seeds_here in seeds_of.items():
        if sorted(seeds_here) != sorted(seeds):
            problems.append(f"{dict(zip(factors, key))}: seeds {seeds_here}, expected {sorted(seeds)}")
    for r in runs:
        where = {k: r[k] for k in factors + ["seed"] if k in r}
        for k, v in r.items():
            if isinstance(v, float) and not (math.isfinite(v) and v >= 0 and ("acc" not in k or v <= 1)):
                problems.append(f"{where}: {k} = {v} is out of range")
        curve = r.get("curve", {})
        lengths = {len(v) for v in curve.values()}
        if len(lengths) != 1:
            problems.append(f"{where}: curve lists have different lengths {sorted(lengths)}")
        for k, v in r.items():
            if k in curve and curve[k][-1] != v:
                problems.append(f"{where}: {k} = {v} but its curve ends at {curve[k][-1]}")
    return problems


@pytest.mark.parametrize("notebook", case_studies(), ids=rel)
def test_results_file_is_well_formed(notebook):
    path = results_file(notebook)
    assert path.is_file(), f"{rel(path)} is missing: run `{COMMAND} CASES={name_of(notebook)}`"
    assert f'"{path.name}"' in notebook.read_text(encoding="utf-8"), f"{rel(notebook)} does not read {path.name}"
    problems = problems_in(json.loads(path.read_text(encoding="utf-8")), name_of(notebook), required_provenance(notebook))
    assert not problems, f"{rel(path)}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("notebook", [nb for nb in case_studies() if results_file(nb).is_file()], ids=rel)
def test_the_checks_catch_edits(notebook):
    """Break a copy of each committed results file in the ways a hand edit would; each must be reported."""
    name, original = name_of(notebook), json.loads(results_file(notebook).read_text(encoding="utf-8"))
    required = required_provenance(notebook)
    assert problems_in(copy.deepcopy(original), name, required) == []

    def broken(edit) -> list[str]:
        data = copy.deepcopy(original)
        edit(data)
        return problems_in(data, name, required)

    assert any("mode" in p for p in broken(lambda d: d["provenance"].update(mode="quick")))
    assert any("provenance lacks" in p for p in broken(lambda d: d["provenance"].pop("torch")))
    assert any("seeds" in p for p in broken(lambda d: d["runs"].pop()))
    assert any("date" in p for p in broken(lambda d: d["provenance"].update(date="yesterday")))
    run = original["runs"][0]
    scalar = next((k for k, v in run.items() if isinstance(v, float) and k in run.get("curve", {})), None)
    if scalar is not None:  # a final value that its curve repeats (grokking's runs keep only curves)
        assert any("curve ends" in p for p in broken(lambda d: d["runs"][0].update({scalar: run[scalar] / 2 + 0.01})))
        assert any("out of range" in p for p in broken(lambda d: d["runs"][0].update({scalar: -1.0})))

"""The lock files pin what pyproject.toml asks for, with hashes: `make lock` was not forgotten."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\[\]-]+)==([^\s;]+)")


def _normal(name):
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def _locked(path):
    """``{name: (version, number of hashes)}`` of a pip-compile file."""
    locked, current = {}, None
    for line in (ROOT / path).read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = _normal(match.group(1))
            locked[current] = [match.group(2), 0]
        elif current and "--hash=sha256:" in line:
            locked[current][1] += 1
    return locked


def _pins(requirements):
    return {_normal(m.group(1)): m.group(2) for m in map(PIN.match, requirements)}


def test_every_direct_dependency_is_locked_at_its_pin_and_everything_has_hashes():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    app_pins = _pins(project["dependencies"])
    test_pins = {**app_pins, **_pins(project["optional-dependencies"]["test"])}
    for path, pins in (("requirements/app.txt", app_pins), ("requirements/test.txt", test_pins)):
        locked = _locked(path)
        assert {name: locked.get(name, [None])[0] for name in pins} == pins, path
        assert all(hashes > 0 for _, hashes in locked.values()), path
        assert len(locked) > len(pins)  # the transitive dependencies are pinned too
    app_locked, test_locked = _locked("requirements/app.txt"), _locked("requirements/test.txt")
    assert {name: test_locked[name][0] for name in app_locked} == {n: v for n, (v, _) in app_locked.items()}

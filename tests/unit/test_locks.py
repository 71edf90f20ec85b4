"""The locks (requirements/*.lock) pin every dependency pyproject.toml declares, with hashes.

They go stale when pyproject.toml changes and nobody runs ``make lock``: this is where that shows.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"


def pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """``{name: (version, [sha256, ...])}`` of a lock compiled with hashes."""
    found: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[a-z0-9])", lock.read_text(), flags=re.IGNORECASE):
        head = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)", block)
        if head:
            name = re.sub(r"[-_.]+", "-", head.group(1)).lower()
            found[name] = (head.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    return {group: [Requirement(r) for r in reqs] for group, reqs in groups.items()}


@pytest.mark.parametrize("lock", ["dev.lock", "lambda.lock"])
def test_every_pin_has_hashes(lock: str) -> None:
    locked = pins(REQUIREMENTS / lock)
    assert len(locked) > 10
    for name, (version, hashes) in locked.items():
        assert hashes, f"{lock}: {name}=={version} has no hash"


def test_the_dev_lock_satisfies_every_declared_dependency_and_extra() -> None:
    locked = pins(REQUIREMENTS / "dev.lock")
    for group, requirements in declared().items():
        for requirement in requirements:
            name = canonical(requirement.name)
            if name == "taskplane":
                continue  # an extra of the project itself (dev includes local)
            assert name in locked, f"{group}: {requirement} is not in dev.lock: run make lock"
            version = locked[name][0]
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{group}: dev.lock pins {name}=={version}, outside {requirement}: run make lock"
            )
    # moto exactly: the local runtime's patches reach into its internals
    (moto,) = [r for r in declared()["local"] if r.name == "moto"]
    assert str(moto.specifier).startswith("==") and locked["moto"][0] == str(moto.specifier)[2:]
    # and the build backend is locked too (make install builds the project without fetching it)
    assert {"setuptools", "wheel"} <= set(locked)


def test_the_lambda_lock_satisfies_the_functions_dependencies_at_the_dev_versions() -> None:
    lam, dev = pins(REQUIREMENTS / "lambda.lock"), pins(REQUIREMENTS / "dev.lock")
    for requirement in declared()["dependencies"]:
        name = canonical(requirement.name)
        if name == "rich":
            continue  # the CLI's, never imported in Lambda
        assert name in lam and requirement.specifier.contains(lam[name][0]), f"{requirement}: run make lock"
        # what the tests run on is what Lambda runs
        assert lam[name][0] == dev[name][0], f"{name}: lambda.lock {lam[name][0]} != dev.lock {dev[name][0]}"
    assert "tzdata" in lam

"""Two Lambda layers, built without Docker: the ``taskplane`` library and its third-party dependencies.

They are separate because they change at different rates: the library changes with nearly every
commit (a few hundred KB to upload), the dependencies only when their lock does (~80 MB). The
dependency list is ``[project].dependencies`` of ``pyproject.toml`` minus what only the CLI uses
(one list to maintain), resolved for Lambda's Python 3.12 on arm64 into ``requirements/lambda.lock``
with PyPI's hashes (``make lock``). The layer installs exactly that lock (``--require-hashes``), and
its asset hash is the lock's: the same lock always ships the same wheels, and a changed lock a new
layer.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
PYTHON_VERSION = "3.12"
#: Wheels for Lambda's arm64 Python 3.12 runtime (Amazon Linux 2023, glibc 2.34).
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
#: Distributions the functions never import (the CLI's terminal output).
NOT_IN_LAMBDA = frozenset({"rich"})
#: Only Lambda needs: IANA zones for ``zoneinfo`` (schedules) without relying on the runtime image
#: shipping /usr/share/zoneinfo; zoneinfo falls back to this package when the system has none.
ONLY_IN_LAMBDA = ("tzdata",)
#: The layer's requirements, resolved for Lambda with hashes (``make lock``), and their input.
LAMBDA_LOCK = ROOT / "requirements" / "lambda.lock"
LAMBDA_IN = ROOT / "requirements" / "lambda.in"
#: Used only when local bundling is impossible and Docker is there.
BUILD_IMAGE = "public.ecr.aws/sam/build-python3.12:latest-arm64"


def _dist_name(requirement: str) -> str:
    name = requirement.split(";")[0]
    for sep in "<>=!~[ ":
        name = name.split(sep)[0]
    return name.strip().lower().replace("_", "-")


def layer_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The runtime dependencies the functions need, as pip requirement strings."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in deps if _dist_name(d) not in NOT_IN_LAMBDA] + list(ONLY_IN_LAMBDA)


def write_lambda_in(path: Path = LAMBDA_IN) -> None:
    """``requirements/lambda.in``, the input ``make lock`` resolves into :data:`LAMBDA_LOCK`."""
    path.write_text("# written by `make lock` from pyproject.toml (infra/capabilities/layers.py)\n"
                    + "\n".join(layer_requirements()) + "\n")  # fmt: skip


def pip_command(lock: Path, target: str) -> list[str]:
    """pip's arguments to install exactly ``lock`` (hash-checked) for Lambda into ``target``."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return [
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--require-hashes",
        "--target",
        target,
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        *platforms,
        "-r",
        str(lock),
    ]


@jsii.implements(cdk.ILocalBundling)
class PipLocalBundling:
    """``pip install`` of the lock's manylinux aarch64 wheels into ``<output>/python``: no Docker needed."""

    def __init__(self, lock: Path) -> None:
        self.lock = lock

    def try_bundle(self, output_dir: str, *_args: Any, **_kwargs: Any) -> bool:
        target = Path(output_dir) / "python"
        result = subprocess.run(
            [sys.executable, *pip_command(self.lock, str(target))],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            # Falling back to Docker would hide pip's reason behind "docker: not found".
            raise RuntimeError(f"pip could not build the dependency layer:\n{result.stderr[-4000:]}")
        for junk in [*target.rglob("__pycache__"), target / "bin"]:
            shutil.rmtree(junk, ignore_errors=True)
        return True


@cache
def _requirements_dir(text: str) -> str:
    # The asset's source: only the Docker fallback reads it (local bundling reads the lock itself).
    folder = Path(tempfile.mkdtemp(prefix="taskplane-deps-layer-"))
    atexit.register(shutil.rmtree, folder, True)
    (folder / "requirements.txt").write_text(text)
    return str(folder)


def layer_fingerprint(lock: Path = LAMBDA_LOCK) -> str:
    """The dependency layer's asset hash: the lock (versions and file hashes) and the target platform."""
    return hashlib.sha256(f"{lock.read_text()}|{PYTHON_VERSION}|{PLATFORMS}".encode()).hexdigest()


class Layers(Construct):
    """``self.core`` (layers/core: the taskplane package) and ``self.deps`` (its dependencies)."""

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str) -> None:
        super().__init__(scope, construct_id)
        # The bundle depends only on the lock and the target platform: hash those, so an unchanged
        # lock is neither rebuilt nor uploaded again, and a changed one always is.
        text = LAMBDA_LOCK.read_text()
        fingerprint = layer_fingerprint(LAMBDA_LOCK)
        self.deps = lambda_.LayerVersion(
            self,
            "Deps",
            layer_version_name=f"{prefix}-deps",
            description="taskplane's third-party dependencies (pydantic, Powertools, boto3, ...)",
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            code=lambda_.Code.from_asset(
                _requirements_dir(text),
                asset_hash_type=cdk.AssetHashType.CUSTOM,
                asset_hash=fingerprint,
                bundling=cdk.BundlingOptions(
                    image=cdk.DockerImage.from_registry(BUILD_IMAGE),
                    command=[
                        "bash",
                        "-c",
                        "pip install --require-hashes -r requirements.txt -t /asset-output/python "
                        "--only-binary=:all:",
                    ],
                    platform="linux/arm64",
                    local=PipLocalBundling(LAMBDA_LOCK),
                ),
            ),
        )
        self.core = lambda_.LayerVersion(
            self,
            "Core",
            layer_version_name=f"{prefix}-core",
            description="the taskplane library (layers/core/python/taskplane)",
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            code=lambda_.Code.from_asset(
                str(ROOT / "layers" / "core"),
                exclude=["**/__pycache__", "**/*.pyc", "**/*.egg-info", "**/.mypy_cache"],
            ),
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.deps, self.core]

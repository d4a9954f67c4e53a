"""The Dockerfile, the compose file and the lock, checked without a Docker engine.

What can run here runs for real: the image's health check command against a running
service. The rest is parsed: the properties a build or `docker compose up` relies on.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.settings import Settings
from bench.procs import free_port
from tests.conftest import REPO

DESTINATIONS = """
destinations:
  - {id: hello, body: hello, from: "+15005550006"}
"""


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    return loaded


def test_base_images_are_pinned() -> None:
    instructions = dockerfile()
    args = dict(
        rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest
    )
    images = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert len(images) == 2
    for image in images:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        # A patch release on a named Debian release, and the digest: even that tag is rebuilt.
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}", resolved)
    python = re.search(r"python:(\d+\.\d+)", args["PYTHON_IMAGE"])
    assert python is not None
    assert python.group(1) == "3.11"  # the lock is resolved for 3.11 (Makefile: make lock)


def test_dependencies_install_from_the_lock_before_the_code_is_copied() -> None:
    instructions = dockerfile()
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    build = instructions[stages[0] : stages[1]]
    copies = [(i, rest) for i, (k, rest) in enumerate(build) if k == "COPY"]
    runs = [(i, rest) for i, (k, rest) in enumerate(build) if k == "RUN"]
    lock_copy = next(i for i, rest in copies if rest.split()[0] == "requirements.lock")
    code_copy = next(i for i, rest in copies if rest.split()[0] == "app")
    lock_install = next(i for i, rest in runs if "-r requirements.lock" in rest)
    assert lock_copy < lock_install < code_copy
    assert "--require-hashes" in build[lock_install][1]
    # Every COPY before the lock install brings the lock alone: a code change keeps the layer.
    assert [rest for i, rest in copies if i < lock_install] == ["requirements.lock ./"]
    package_install = next(i for i, rest in runs if re.search(r"pip install .*\s\.$", rest))
    assert package_install > code_copy
    assert "--no-deps" in build[package_install][1]


def test_embedded_redis_data_is_a_volume() -> None:
    instructions = dockerfile()
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    data_dir = re.search(r"SMS_DATA_DIR=(\S+)", env)
    assert data_dir is not None
    volumes = [json.loads(rest) for keyword, rest in instructions if keyword == "VOLUME"]
    assert [data_dir.group(1)] in volumes
    user = next(rest for keyword, rest in instructions if keyword == "USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user)  # numeric and not root


def healthcheck_command() -> list[str]:
    rest = next(rest for keyword, rest in dockerfile() if keyword == "HEALTHCHECK")
    command: list[str] = json.loads(rest.split("CMD", 1)[1])
    return command


def test_health_check_probes_readiness_without_curl(start_service: Any) -> None:
    command = healthcheck_command()
    assert command[0] == "python"  # the slim image has no curl or wget
    assert "/readyz" in command[-1]
    service = start_service(DESTINATIONS)
    port = service.base_url.rsplit(":", 1)[1]
    probe = [sys.executable, *command[1:]]
    ready = subprocess.run(probe, env={"SMS_PORT": port}, capture_output=True, timeout=10)
    assert ready.returncode == 0, ready.stderr
    nothing = subprocess.run(
        probe, env={"SMS_PORT": str(free_port())}, capture_output=True, timeout=10
    )
    assert nothing.returncode != 0


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    wanted = {canonicalize_name(Requirement(dep).name) for dep in project["dependencies"]}
    lock = (REPO / "requirements.lock").read_text()
    pinned: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", lock):
        first = block.split("\\", 1)[0].strip()
        if not first or first.startswith("#"):
            continue
        requirement = Requirement(first)
        assert len(requirement.specifier) == 1
        assert next(iter(requirement.specifier)).operator == "=="
        assert "--hash=sha256:" in block, f"{requirement.name} has no hash"
        pinned[canonicalize_name(requirement.name)] = str(requirement.specifier)
    missing = wanted - pinned.keys()
    assert not missing, f"not in requirements.lock (run `make lock`): {sorted(missing)}"
    assert "make lock" in lock.splitlines()[1]
    # The image builds the package without build isolation, with the locked build backend.
    for requirement in map(Requirement, pyproject["build-system"]["requires"]):
        version = pinned[canonicalize_name(requirement.name)].removeprefix("==")
        assert requirement.specifier.contains(version), (requirement, version)


def env_file_names(path: Path) -> list[str]:
    """Variables an env file sets or shows commented out (`# NAME=value`)."""
    return re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", path.read_text(), flags=re.MULTILINE)


def setting_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias.choices[0] if alias is not None else f"SMS_{name.upper()}")  # type: ignore[union-attr]
    return names


def test_compose_reads_every_setting_from_one_env_file() -> None:
    services = compose()["services"]
    ours = {name: s for name, s in services.items() if s.get("image", "").startswith("smsdest")}
    assert set(ours) == {"smsdest", "worker"}
    for service in ours.values():
        assert service["env_file"] == "smsdest.env"
        # `environment` wins over `env_file`: only the address of the compose Redis is there,
        # never a `${VAR:-}` that would blank what the env file says.
        assert service["environment"] == {"SMS_REDIS_URL": "redis://redis:6379/0"}
    example = REPO / "deploy" / "smsdest.env.example"
    listed = env_file_names(example)
    assert len(listed) == len(set(listed)), "a variable is listed twice"
    unknown = set(listed) - setting_names()
    assert not unknown, f"not settings: {sorted(unknown)}"
    absent = setting_names() - set(listed)
    assert not absent, f"add to deploy/smsdest.env.example: {sorted(absent)}"
    # The copy with secrets is never committed nor sent to a docker build.
    assert "deploy/smsdest.env" in (REPO / ".gitignore").read_text().splitlines()
    assert "deploy" in (REPO / ".dockerignore").read_text().splitlines()


def test_compose_never_creates_a_directory_for_a_missing_file() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":", 1)[0]
                # Short syntax is only for named volumes: a path there is created if missing.
                assert not source.startswith((".", "/", "~")), (name, volume)
                continue
            if volume["type"] == "bind":
                assert volume["bind"]["create_host_path"] is False, (name, volume)
                assert volume.get("read_only") is True
    mounts = {v["target"]: v["source"] for v in services["smsdest"]["volumes"]}
    # The image's defaults point at the mounts.
    env = " ".join(rest for keyword, rest in dockerfile() if keyword == "ENV")
    for variable in ("SMS_DESTINATIONS_FILE", "SMS_TEMPLATES_DIR"):
        value = re.search(rf"{variable}=(\S+)", env)
        assert value is not None and value.group(1) in mounts
    # The README's steps create exactly the files the compose file needs.
    readme = (REPO / "README.md").read_text()
    assert "cp destinations.example.yaml destinations.yaml" in readme
    assert "cp deploy/smsdest.env.example deploy/smsdest.env" in readme
    assert mounts["/app/destinations.yaml"] == "../destinations.yaml"
    assert (REPO / "deploy" / mounts["/app/templates"]).resolve() == REPO / "templates"

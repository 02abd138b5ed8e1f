"""deploy/Dockerfile and deploy/compose.yaml: no Docker engine here, so their validity is checked
against the repository (files they copy, commands and settings they name) instead of by a run."""
from __future__ import annotations

import json
import re
import shlex
import tomllib
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from common.settings import Settings
from openfnf.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
SETTINGS = {f"OPENFNF_{name.upper()}" for name in Settings.model_fields}
OTEL = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"}  # standard variables common/tracing.py reads
TOP_LEVEL = ("api", "common", "worker", "openfnf")
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|make|clang|python3?-dev|libc6-dev)\b")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (the first list holds what precedes the first FROM)."""
    out: list[list[tuple[str, str]]] = [[]]
    for ins in instructions(text):
        if ins[0] == "FROM":
            out.append([])
        out[-1].append(ins)
    return out


def test_dockerfile_is_multi_stage_and_the_final_stage_is_small_and_unprivileged() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    parts = stages(text)[1:]
    assert len(parts) >= 2, "a build stage and a runtime stage"
    build, final = parts[0], parts[-1]
    assert any(BUILD_TOOLS.search(arg) for kind, arg in build if kind == "RUN"), "compilers belong in the build stage"
    final_runs = " ".join(arg for kind, arg in final if kind == "RUN")
    assert not BUILD_TOOLS.search(final_runs), "no build tools in the final stage"
    assert "apt-get install" not in final_runs and "pip install" not in final_runs
    copies = [arg for kind, arg in final if kind == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), "the final stage only copies the built venv"
    users = [arg for kind, arg in final if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as a non-root user"
    entry = [json.loads(arg) for kind, arg in final if kind == "ENTRYPOINT"][-1]
    cmd = [json.loads(arg) for kind, arg in final if kind == "CMD"][-1]
    assert entry == ["openfnf"], "exec form, so the process gets SIGTERM as PID 1"
    assert cmd in (["api"], ["worker"], ["timers"])


def shipped(package: str) -> bool:
    """Whether `pip install .` (what the image does) installs this package, per pyproject.toml."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    packages = tool.get("packages")
    if isinstance(packages, list):
        return package in packages
    include = (packages or {}).get("find", {}).get("include", ["*"])
    exclude = (packages or {}).get("find", {}).get("exclude", [])
    return any(fnmatchcase(package, pat) for pat in include) and not any(fnmatchcase(package, pat) for pat in exclude)


def packages_in_tree() -> set[str]:
    """Every package (directory with __init__.py) of the four top-level packages."""
    return {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in TOP_LEVEL
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_dockerfile_copies_only_files_that_exist_and_are_not_ignored() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    build = stages(text)[1]
    sources: list[str] = []
    for kind, arg in build:
        if kind == "COPY" and not arg.startswith("--from="):
            sources += shlex.split(arg)[:-1]
    assert sources
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].split("/")[0] for line in ignore if line.startswith("!")}
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such path in the repository (the build context is the repo root)"
        assert src.split("/")[0] in allowed, f"COPY {src} is excluded by deploy/Dockerfile.dockerignore"
    assert set(TOP_LEVEL) <= set(sources), "every top-level package is copied into the image"


def test_pyproject_ships_every_package_the_image_imports() -> None:
    """The image installs the project (not editable): a package left out is missing in production."""
    missing = sorted(p for p in packages_in_tree() if not shipped(p))
    assert not missing, f"pyproject.toml [tool.setuptools] would not install: {missing}"
    assert not shipped("tests") and not shipped("bench"), "tests and benchmarks stay out of the image"
    deps = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"])
    assert "prometheus-client" in deps


# ------------------------------------------------------------------ compose


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with no VAR set (what `docker compose up` does on a fresh checkout)."""
    out = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", lambda m: m.group(1), value)
    assert "${" not in out, f"{value}: a variable without a default, compose up would fail or run unconfigured"
    return out


def check_cli(argv: list[str]) -> None:
    ctx = cli.make_context("openfnf", list(argv), resilient_parsing=True)
    sub = cli.get_command(ctx, argv[0])
    assert sub is not None, f"no command openfnf {argv[0]}"
    known = {opt for p in sub.params if isinstance(p, click.Option) for opt in p.opts}
    for arg in argv[1:]:
        if arg.startswith("--"):
            assert arg.split("=")[0] in known, f"openfnf {argv[0]} has no option {arg}"


def test_compose_has_redis_with_aof_and_no_eviction() -> None:
    redis = compose()["services"]["redis"]
    cmd = redis["command"]
    assert cmd[0] == "redis-server"
    args = dict(zip(cmd[1::2], cmd[2::2], strict=True))
    assert args["--appendonly"] == "yes"
    assert args["--maxmemory-policy"] == "noeviction"
    assert any(v.endswith(":/data") for v in redis["volumes"]), "the AOF lives on a volume"
    assert redis["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]


def test_compose_runs_the_three_processes_on_one_image() -> None:
    doc = compose()
    services = doc["services"]
    assert {name for name, svc in services.items() if not svc.get("profiles")} == {"redis", "api", "worker", "timers"}
    for role in ("api", "worker", "timers"):
        svc = services[role]
        assert svc["command"] == [role]
        check_cli(svc["command"])
        build = svc["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        env = {k: interpolate(str(v)) for k, v in svc["environment"].items()}
        unknown = set(env) - SETTINGS - OTEL
        assert not unknown, f"{role}: settings OpenFnF does not have: {sorted(unknown)}"
        assert env["OPENFNF_REDIS_URL"] == "redis://redis:6379/0"
        assert env["OPENFNF_TOKEN_SECRET"]
        assert svc["healthcheck"]["test"][0] == "CMD"
    assert services["api"]["ports"] == ["8080:8080"]
    api_env = {k: interpolate(str(v)) for k, v in services["api"]["environment"].items()}
    assert api_env["OPENFNF_PORT"] == "8080" and api_env["OPENFNF_HOST"] == "0.0.0.0"
    assert api_env["OPENFNF_ACCESS_KEY_ID"] and api_env["OPENFNF_ACCESS_KEY_SECRET"], "compose up must accept a key"
    assert services["worker"]["deploy"]["replicas"] >= 2


@pytest.mark.parametrize("role", ["worker", "timers"])
def test_compose_liveness_checks_are_real_commands(role: str) -> None:
    test = compose()["services"][role]["healthcheck"]["test"]
    assert test[1:] == ["openfnf", role, "--check"]
    check_cli(test[2:])


def test_compose_api_healthcheck_asks_readyz_on_the_served_port() -> None:
    api = compose()["services"]["api"]
    probe = " ".join(api["healthcheck"]["test"])
    assert "/readyz" in probe and ":8080/" in probe


def test_compose_stop_grace_is_longer_than_the_front_door_drain() -> None:
    api = compose()["services"]["api"]
    grace = int(api["stop_grace_period"].rstrip("s"))
    assert grace > float(api["environment"]["OPENFNF_SHUTDOWN_TIMEOUT_SECONDS"])


def test_compose_tracing_is_off_by_default_and_the_tracing_profile_runs_jaeger() -> None:
    """Issue 18: `--profile tracing` adds Jaeger; every process exports to it once the endpoint is set."""
    from common import tracing

    services = compose()["services"]
    jaeger = services["jaeger"]
    assert jaeger["profiles"] == ["tracing"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:") and not jaeger["image"].endswith(":latest")
    assert interpolate(jaeger["environment"]["COLLECTOR_OTLP_ENABLED"]) == "true"
    assert {"16686:16686", "4318:4318"} <= set(jaeger["ports"])
    for role in ("api", "worker", "timers"):
        env = {k: interpolate(str(v)) for k, v in services[role]["environment"].items()}
        assert not tracing.requested(env), f"{role}: traced on a fresh checkout"
        assert tracing.requested({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"})
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"


def test_the_image_installs_the_tracing_extra() -> None:
    """Every process the image runs (compose, the chart) can trace when the OTEL_* variables ask."""
    build = stages(DOCKERFILE.read_text(encoding="utf-8"))[1]
    runs = " ".join(args for word, args in build if word == "RUN")
    assert "install '.[tracing]'" in runs and "opentelemetry.sdk.trace" in runs
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(d.startswith("opentelemetry-sdk") for d in extras["tracing"])
    assert "openfnf[tracing]" in extras["test"]


def merged_compose(*files: Path) -> dict[str, Any]:
    """`docker compose -f A -f B config` for what these files use: mappings merged, later files win."""

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            return {k: merge(base.get(k), v) if k in base else v for k, v in over.items()} | {k: v for k, v in base.items() if k not in over}
        return over

    doc: dict[str, Any] = {}
    for f in files:
        doc = merge(doc, yaml.safe_load(f.read_text(encoding="utf-8")))
    return doc


def test_compose_rabbitmq_variant_moves_the_broker_of_every_process() -> None:
    from urllib.parse import urlsplit

    from common.brokers import broker_kind

    doc = merged_compose(COMPOSE, DEPLOY / "compose.rabbitmq.yaml")
    services = doc["services"]
    assert {"redis", "rabbitmq", "api", "worker", "timers"} <= set(services)
    rabbit = services["rabbitmq"]
    assert rabbit["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]
    assert any(v.endswith(":/var/lib/rabbitmq") for v in rabbit["volumes"]), "the queues live on a volume"
    erl = rabbit["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"].split()
    consumer_timeout_ms = int(erl[erl.index("consumer_timeout") + 1])
    assert consumer_timeout_ms > 30 * 60 * 1000, "above RabbitMQ's 30-minute default (docs/deploy.md)"
    user = interpolate(rabbit["environment"]["RABBITMQ_DEFAULT_USER"])
    for role in ("api", "worker", "timers"):
        svc = services[role]
        env = {k: interpolate(str(v)) for k, v in svc["environment"].items()}
        assert set(env) <= SETTINGS | OTEL
        url = env["OPENFNF_BROKER_URL"]
        assert broker_kind(url) == "amqp" and urlsplit(url).hostname == "rabbitmq" and urlsplit(url).username == user
        assert env["OPENFNF_REDIS_URL"] == "redis://redis:6379/0", "the state stays on Redis"
        assert svc["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert svc["command"] == [role]

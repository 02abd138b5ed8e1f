"""The `openfnf` command line: dev, api, worker, timers."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from common import tracing
from common.logs import setup_logging
from common.settings import Settings
from openfnf.clicmds import executions, flows, tasks
from openfnf.loadtest import loadtest
from openfnf.throttlecli import chaos, check_seed, env_for_dev, seed_options, throttle


def _settings(**overrides: Any) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    setup_logging(settings.log_level, settings.log_format)
    return settings


@click.group()
def main() -> None:
    """OpenFnF: Alibaba Cloud Serverless Workflow (FnF / CloudFlow) on your own machines."""


@main.command()
@click.option("--port", default=8080, show_default=True, help="Port of the front door.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the front door listens on.")
@click.option("--data-dir", default=".openfnf", show_default=True, type=click.Path(path_type=Path), help="Redis data, keys.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Celery worker processes.")
@click.option("--api-processes", default=1, show_default=True, type=click.IntRange(1, 64), help="Front door processes sharing the port (SO_REUSEPORT).")
@click.option("--functions", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Functions file.")
@click.option("--access-key-id", help="Access key id to accept (default: generated, kept in the data dir).")
@click.option("--access-key-secret", help="Its secret.")
@click.option(
    "--credentials", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Credentials YAML (accounts, keys, policies, as `openfnf api --credentials` reads it; re-read when it changes); the dev key is accepted too.",
)  # fmt: skip
@click.option("--buckets", type=click.Path(file_okay=False, path_type=Path), help="Directory buckets for the distributed Map: each subdirectory is a bucket.")
@seed_options
def dev(
    port: int, host: str, data_dir: Path, workers: int, api_processes: int, functions: Path | None, access_key_id: str | None,
    access_key_secret: str | None, credentials: Path | None = None, throttle_file: Path | None = None, throttle_profile: str | None = None,
    buckets: Path | None = None,
) -> None:
    """Run everything on this machine: embedded redis-server, front door, workers, timers."""
    from openfnf.dev import DevOptions, Supervisor

    if bool(access_key_id) != bool(access_key_secret):
        raise click.UsageError("--access-key-id and --access-key-secret go together")
    opts = DevOptions(
        data_dir=data_dir, host=host, port=port, workers=workers, api_processes=api_processes, functions=functions,
        access_key_id=access_key_id, access_key_secret=access_key_secret, credentials=credentials,
    )  # fmt: skip
    check_seed(throttle_file)
    opts.extra_env.update(env_for_dev(throttle_file, throttle_profile))  # the front door seeds them
    if buckets is not None:  # distributed Map (issue 16): items and results in local directories
        buckets.mkdir(parents=True, exist_ok=True)
        opts.extra_env["OPENFNF_BUCKETS_DIR"] = str(buckets.resolve())
    sys.exit(Supervisor(opts).run())


@main.command()
@click.option("--port", type=int, help="Port (default OPENFNF_PORT or 8080).")
@click.option("--host", help="Address (default OPENFNF_HOST or 127.0.0.1).")
@click.option(
    "--credentials", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Credentials YAML (accounts, keys, policies); re-read when it changes or on SIGHUP. Default OPENFNF_CREDENTIALS.",
)  # fmt: skip
@seed_options
def api(
    port: int | None, host: str | None, credentials: Path | None = None, throttle_file: Path | None = None, throttle_profile: str | None = None
) -> None:
    """Run one front door against OPENFNF_REDIS_URL."""
    from api.app import run

    check_seed(throttle_file)
    settings = _settings(port=port, host=host, credentials=credentials, throttle_file=throttle_file, throttle_profile=throttle_profile)
    tracing.configure("openfnf-api")  # before the app is made: it adds the request-span middleware when on
    run(settings, extend=_console(settings))


def _console(settings: Settings) -> Any:
    """What mounts the web console on a front door (None when OPENFNF_CONSOLE=false): the api room never imports it."""
    if not settings.console:
        return None
    from console.app import attach

    return lambda app: attach(app, settings)


@main.command()
@click.option("--queues", default=None, help="Comma-separated queues (default: drives and activities).")
@click.option("--concurrency", default=1, show_default=True, type=int)
@click.option("--pool", default="solo", show_default=True, type=click.Choice(["solo", "prefork", "threads"]))
@click.option("--hostname", default=None, help="Celery node name.")
@click.option("--check", is_flag=True, help="Liveness probe: exit 0 if this machine's worker is alive (fresh heartbeat), else 1.")
def worker(queues: str | None, concurrency: int, pool: str, hostname: str | None, check: bool = False) -> None:
    """Run one Celery worker against OPENFNF_BROKER_URL / OPENFNF_REDIS_URL."""
    settings = _settings()
    if check:  # before importing Celery: a probe runs often and must be cheap
        from worker.heartbeat import run_check

        sys.exit(run_check(settings, "worker"))
    from common.brokers import refuse_cluster_server

    refuse_cluster_server(settings)  # a broker URL naming a cluster node: a clear refusal, not MOVED errors later
    from worker.celeryapp import run_worker

    chosen = queues.split(",") if queues else [settings.drive_queue, settings.activity_queue]
    tracing.configure("openfnf-worker")
    run_worker(settings, chosen, concurrency, pool, [f"--hostname={hostname}"] if hostname else [])


@main.command()
@click.option("--check", is_flag=True, help="Liveness probe: exit 0 if this machine's timers process is alive, else 1.")
def timers(check: bool = False) -> None:
    """Run the timers and safety-net loop against OPENFNF_REDIS_URL."""
    from worker.timers import run_timers

    settings = _settings()
    if check:
        from worker.heartbeat import run_check

        sys.exit(run_check(settings, "timers"))
    tracing.configure("openfnf-timers")
    run_timers(settings)


# Throttling rules, fault injection and the load generator (issue 7).
main.add_command(throttle)
main.add_command(chaos)
main.add_command(loadtest)

# The terminal client over the signed API (issue 15).
main.add_command(flows)
main.add_command(executions)
main.add_command(tasks)

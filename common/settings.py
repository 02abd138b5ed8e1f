"""One Settings object, read from the environment (prefix OPENFNF_), built once per process."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.jsonlimits import DEFAULT_MAX_DEPTH, HARD_MAX_DEPTH


class Settings(BaseSettings):
    """Every tunable of OpenFnF; each entry point builds one and passes it down."""

    model_config = SettingsConfigDict(env_prefix="OPENFNF_", extra="ignore")

    # Where state lives and how work reaches the workers.
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = None  # Celery broker: a Redis (redis://) or RabbitMQ (amqp://); defaults to redis_url
    # The state Redis is a Redis Cluster (its support comes with issue 17's cluster part); the broker
    # must then be another server (common/brokers.py refuse_cluster_broker).
    redis_cluster: bool = False
    # Global sets (wake-ups, timers, activity rescue, due schedules) are split into this many keys, each
    # in its own hash slot, so no key (no Cluster shard) carries a share of the traffic that grows with executions.
    partitions: Annotated[int, Field(ge=1, le=1024)] = 16

    # Front door.
    host: str = "127.0.0.1"
    port: int = 8080
    reuse_port: bool = False  # front door: SO_REUSEPORT, so several `openfnf api` processes on one machine share the port
    region: str = "cn-hangzhou"
    credentials: Path | None = None  # YAML credentials file (accounts, keys, policies)
    account_id: str = "1234567890"  # account of the single configured key below
    access_key_id: str | None = None
    access_key_secret: str | None = None
    token_secret: str = "openfnf-dev-token-secret"  # HMAC key for task tokens

    # Limits, as the cloud documents them (all adjustable).
    max_request_bytes: int = 1024 * 1024
    max_state_bytes: int = 64 * 1024  # input/output of one state (new syntax)
    max_history_events: int = 5000
    # Levels of objects and arrays in JSON from outside (parameters, task results, callback outputs):
    # deeper is 400 InvalidArgument / a failed task (common/jsonlimits.py); at most 500, far from Python's recursion limit.
    max_json_depth: Annotated[int, Field(ge=1, le=HARD_MAX_DEPTH)] = DEFAULT_MAX_DEPTH
    timestamp_skew_seconds: int = 15 * 60
    long_poll_max_seconds: int = 60

    # Front door hardening (issue 4): slow or stalled clients, oversized requests, credential reloads.
    keepalive_timeout_seconds: float = 75.0  # an idle connection, or one whose request headers are incomplete, is closed after this
    body_read_timeout_seconds: float = 30.0  # the whole request body must arrive within this; else 408 RequestTimeout
    max_line_bytes: int = 16 * 1024  # request line (path + query string)
    max_field_bytes: int = 8 * 1024  # one header line
    max_headers: int = 100  # header lines per request
    lingering_seconds: float = 2.0  # after refusing a body, how long unread bytes are drained before closing
    credentials_poll_seconds: float = 1.0  # the credentials file's mtime is checked at most this often

    # Engine.
    functions: Path | None = None  # functions file (ARN pattern -> python/http)
    # What a Python function gets as context.credentials and context.endpoint, so it can call the
    # API back (ReportTaskSucceeded, StartExecution) as FC functions do with their role's keys.
    functions_access_key_id: str = ""
    functions_access_key_secret: str = ""
    functions_endpoint: str = ""  # host:port of a front door; default OPENFNF_HOST:OPENFNF_PORT
    retention_days: int = 90  # finished executions and their history
    # On average one StartExecution in this many also drops expired names from its flow's executions index
    # (Store.sweep_index; ListExecutions drops those it reads); 0: only ListExecutions does.
    index_sweep_every: int = 256
    # Issue 17: a StartExecution of a flow whose states are all pure (Pass, Choice, Succeed, Fail, Parallel and
    # inline Map of those) runs it to its end itself and writes it ended with its claim (common/purestart.py),
    # unless its history would pass this many events (a Choice loop, a large Map: left to the workers); 0: the
    # workers run every execution.
    pure_at_start_events: int = 500
    wake_after_ms: int = 5000  # safety net: re-drive an execution whose inbox is still full after this
    activity_rescue_ms: int = 60000  # an activity no worker shows life for (lost message, killed worker) runs again after this
    rescue_backlog_limit: int = 1000  # ... unless more drive messages than this wait in the queue (they are queued, not lost)
    max_activity_crashes: int = 3  # a call whose worker died this many times while running it fails FnF.WorkerCrashed; 0: no limit
    lease_ms: int = 10000  # driver lease; a drive taking longer loses its fence
    timers_poll_ms: int = 50
    # The safety nets' sets (wake-ups, activity rescue) are looked at this often: their deadlines are seconds
    # away, and under load their partitions are never empty, so each look is a command per partition.
    rescue_poll_ms: int = 500
    # Seconds before Celery's Redis transport re-delivers an unacknowledged message (a worker killed
    # mid-activity). Must stay above the longest activity timeout, or long calls run twice.
    visibility_timeout_seconds: int = 3600
    drive_queue: str = "openfnf.drives"
    drive_batch: int = 32  # most executions one drive message carries (common/taskmsg.py drive_messages)
    activity_batch: int = 25  # most RunActivity commands of one decision that one activity message carries
    activity_queue: str = "openfnf.activities"

    # Logging.
    log_level: str = "INFO"

    # Throttling (issue 7), deploy/health/metrics (issue 10), schedules (issue 8) add their settings below,
    # each in its own commented block.

    # Throttling (issue 7): rules live in Redis (`openfnf throttle`); these seed them at start.
    throttle_file: Path | None = None  # YAML/JSON rules file: {rules: [...], chaos: [...]}
    throttle_profile: str | None = None  # `cloud`: the cloud's documented quotas (spec 2.5); `none`
    throttle_refresh_ms: int = 500  # how often each front door re-reads the rules from Redis
    chaos_seed: int | None = None  # seeds each front door's chaos draws (a reproducible test run); unset: random
    max_running_executions: int = 10_000  # per account, as the cloud; 0 turns the cap off
    # The running count of an account is spread over this many keys (each in its own slot; common/runcount.py),
    # so on a Redis Cluster an account's starts and ends do not all land on one shard. Raise it freely;
    # lower it only with no execution running (the counts in the dropped shards would be lost).
    running_shards: Annotated[int, Field(ge=1, le=256)] = 8
    running_cap_retry_after_ms: int = 1000  # x-acs-retry-after when StartExecution hits the cap
    max_nesting_depth: int = 32  # child flows below a root execution, any start mode; a deeper start fails its task (FnF.MaxNestingDepthExceeded)

    # Deploy, health, metrics (issue 10): how each process behaves under an orchestrator.
    log_format: Literal["text", "json"] = "text"  # json: one object per line with request_id, flow, execution
    shutdown_timeout_seconds: float = 25.0  # front door on SIGTERM: in-flight requests get this long; long polls answer 1 s before
    heartbeat_file: Path | None = None  # worker/timers liveness file; default <tmpdir>/openfnf-<worker|timers>.alive
    heartbeat_interval_seconds: float = 5.0  # how often the heartbeat file is rewritten
    heartbeat_stale_seconds: float = 30.0  # `--check` fails when the heartbeat or the main loop is older than this
    task_stuck_seconds: float = 0.0  # worker `--check` fails when one task runs longer than this; 0: never
    metrics_port: int = 0  # worker/timers: Prometheus /metrics on host:metrics_port; 0: off (the front door serves /metrics on its own port)

    # Schedules, StartSyncExecution, DescribeRegions (issue 8).
    regions: str = ""  # DescribeRegions: comma-separated region ids, each optionally `id=Local name`; empty: just `region`
    public_endpoint: str = ""  # DescribeRegions' RegionEndpoint: host[:port] clients reach the front door at; empty: host:port
    express_timeout_seconds: int = 300  # an Express execution still running this long after its start is stopped (FnF.Timeout)
    express_grace_seconds: float = 10.0  # StartSyncExecution waits this long past the limit for the end, then answers as it is
    schedule_catchup_seconds: float = 10.0  # schedule ticks up to this late all fire (a slow timers process); older ones collapse into one

    # Web console (issue 15): served by the front door process at /console/, or on a port of its own.
    console: bool = True  # false: no console routes at all
    console_port: int = 0  # 0: the front door's port (/console/); else a separate listener on this port (same host)
    console_session_seconds: int = 8 * 3600  # a signed-in session ends this long after sign-in
    console_signin_attempts: int = 10  # sign-in attempts per client address per minute; more -> 429
    console_secure_cookie: bool = False  # mark the session cookie Secure (set it when the console is served over HTTPS)

    # Redrive (issue 18): RedriveExecution reopens a Failed, Stopped or TimedOut execution.
    max_redrives: int = 1000  # redrives per execution; one more is 400 ExecutionNotRedrivable

    # Distributed Map (issue 16): the object store and the MapRun quotas.
    oss_endpoint: str = ""  # OSS or any S3-compatible endpoint URL, e.g. https://oss-cn-hangzhou.aliyuncs.com
    oss_region: str = ""  # the store's region; default the service's `region`
    oss_access_key_id: str = ""
    oss_access_key_secret: str = ""
    oss_addressing_style: Literal["virtual", "path"] = "virtual"  # OSS accepts only virtual-host style
    buckets_dir: Path | None = None  # directory buckets (`openfnf dev --buckets DIR`): a bucket is a subdirectory; wins over oss_endpoint
    maprun_max_items: int = 10_000  # items one MapRun may process (the cloud's default quota); more without MaxItems fails it
    maprun_max_concurrency: int = 300  # children of one MapRun in flight at most; MaxConcurrency / UpdateMapRun above it are clamped
    maprun_default_concurrency: int = 100  # children in flight when the Map gives no MaxConcurrency
    maprun_max_open: int = 10  # MapRuns open at once in one execution (the cloud's MaxOpenMapRun); one more fails its Map
    maprun_page_items: int = 500  # items read from the store per page; bounds what one MapRun holds in memory and in Redis
    maprun_result_file_items: int = 1000  # results per ResultWriter file (SUCCEEDED_n.json, FAILED_n.json)

    # Test-only fault points (never set in production): names of places to os._exit(137).
    fault_points: list[str] = Field(default_factory=list)

    @property
    def effective_broker_url(self) -> str:
        """The Celery broker URL, defaulting to the state Redis."""
        return self.broker_url or self.redis_url

    @property
    def retention_seconds(self) -> int:
        """How long an ended execution's keys stay (retention_days)."""
        return self.retention_days * 86400

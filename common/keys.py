"""Every Redis key OpenFnF uses, built here and nowhere else.

An execution is addressed by its tag, `<flow id>/<execution name>`; all keys of one execution
carry that tag in braces so they hash to one Cluster slot and scripts can touch them together.
Flows hash by account. The flow id (not its name) is in the tag, so a flow deleted and
created again under the same name starts with no executions, as the cloud documents.
"""
from __future__ import annotations

import functools
import json
import zlib

from redis.crc import key_slot

PREFIX = "fnf:"

DONE_CHANNEL = PREFIX + "done"  # pub/sub: tag of a watched execution that just ended


def done_channel(tag: str) -> str:
    """Sharded pub/sub channel (SPUBLISH, Redis 7+): the tag of this execution when it ends, in its slot.
    commit.lua builds the same name from DONE_CHANNEL and the tag (api/waiters.py)."""
    return f"{DONE_CHANNEL}:{{{tag}}}"


def tag_of_done_channel(channel: str) -> str:
    """The execution tag a `done_channel` is for."""
    return channel[len(DONE_CHANNEL) + 2 : -1]

# Partitioned sets (issue 17). What was one global key is `Settings.partitions` keys, partition p
# holding the members whose `partition(...)` is p. A partition's keys share one hash tag, chosen so
# the partitions spread evenly over the slots (and so over a Cluster's shards): no key carries a share
# of the traffic that grows with executions. A single Redis uses the same keys (one code path).


def partition(member: str, n: int) -> int:
    """The partition (0..n-1) of an execution tag or a schedule member."""
    return zlib.crc32(member.encode()) % n


@functools.cache
def partition_tag(p: int, n: int) -> str:
    """The hash tag of partition p of n: the first `fnf.p<p>.<j>` whose slot lies in the p-th n-th of the slots."""
    span = -(-16384 // n)
    for j in range(1_000_000):
        tag = f"fnf.p{p}.{j}"
        if key_slot(tag.encode()) // span == p:
            return tag
    raise AssertionError("unreachable: every slot range holds some tag")


def wake(p: int, n: int) -> str:
    """Zset: execution tag -> deadline ms (the safety net), partition p of n."""
    return f"{PREFIX}wake:{{{partition_tag(p, n)}}}"


def timers(p: int, n: int) -> str:
    """Zset: timer entry json -> due ms, partition p of n (by the timer's execution tag)."""
    return f"{PREFIX}timers:{{{partition_tag(p, n)}}}"


def activities(p: int, n: int) -> str:
    """Zset: "<tag>#<activity id>" -> when to run it again if no worker shows life (ms), partition p of n."""
    return f"{PREFIX}acts:{{{partition_tag(p, n)}}}"


def activity_commands(p: int, n: int) -> str:
    """Hash: "<tag>#<activity id>" -> the RunActivity command (JSON), partition p of n (beside `activities`)."""
    return f"{PREFIX}actcmd:{{{partition_tag(p, n)}}}"


def activity_starts(p: int, n: int) -> str:
    """Hash: "<tag>#<activity id>" -> times a worker began its call (cleared by its report), partition p of n."""
    return f"{PREFIX}actstarts:{{{partition_tag(p, n)}}}"


def schedules_due(p: int, n: int) -> str:
    """Zset: schedule member JSON -> next fire ms (a hint; the record is the truth), partition p of n."""
    return f"{PREFIX}sched:due:{{{partition_tag(p, n)}}}"


def partition_lease(p: int, n: int) -> str:
    """String with a TTL: the id of the timers process polling partition p of n."""
    return f"{PREFIX}plock:{{{partition_tag(p, n)}}}"


TIMERS_MEMBERS = PREFIX + "timers:members"  # zset: timers process id -> last seen ms (how many share the partitions)


def pending_start(account: str, flow_name: str, name: str) -> str:
    """The wake-up member of a StartExecution not yet claimed, written before the claim (the flow id,
    so the tag, is not known yet): the timers resolve it through the flow record. A JSON array, which
    no tag (`<flow id>/<name>`) starts like."""
    return json.dumps([account, flow_name, name], separators=(",", ":"))


def wake_for(tag: str, n: int) -> str:
    """The wake-up zset holding execution `tag`."""
    return wake(partition(tag, n), n)


def timers_for(tag: str, n: int) -> str:
    """The timers zset holding the timers of execution `tag`."""
    return timers(partition(tag, n), n)


def activities_for(tag: str, n: int) -> str:
    """The activity rescue zset holding the activities of execution `tag`."""
    return activities(partition(tag, n), n)


def activity_starts_for(tag: str, n: int) -> str:
    """The activity start-count hash holding the activities of execution `tag`."""
    return activity_starts(partition(tag, n), n)


def activity_commands_for(tag: str, n: int) -> str:
    """The activity command hash holding the activities of execution `tag`."""
    return activity_commands(partition(tag, n), n)


def signature_nonce(key_id: str, nonce: str, account: str = "*") -> str:
    """String with a TTL: a SignatureNonce this access key (of `account`) has used (replay guard of the front door).

    Hashed by itself (issue 17): nonces are one key per request, so in the account's slot they piled
    onto one Cluster shard. The admission spends it beside gcra.lua in one round trip (api/admission.py);
    the default account `*` (with key_id/nonce `*`) makes a SCAN pattern of every nonce.
    """
    return f"{PREFIX}n:{{{account}:{key_id}:{nonce}}}"


def execution_tag(flow_id: str, name: str) -> str:
    """The routing tag of one execution."""
    return f"{flow_id}/{name}"


def split_tag(tag: str) -> tuple[str, str]:
    """(flow id, execution name) of a tag."""
    flow_id, _, name = tag.partition("/")
    return flow_id, name


def execution(tag: str) -> str:
    """Hash: the execution record (status, input, output, interpreter state)."""
    return f"{PREFIX}x:{{{tag}}}"


def inbox(tag: str) -> str:
    """List: events not yet seen by the driver."""
    return f"{PREFIX}i:{{{tag}}}"


def history(tag: str) -> str:
    """List: history chunks, one per drive, each a JSON array of events."""
    return f"{PREFIX}h:{{{tag}}}"


def tasks(tag: str) -> str:
    """Hash: task id -> 'waiting' while a callback task waits for its report, 'done' after."""
    return f"{PREFIX}t:{{{tag}}}"


def children(tag: str) -> str:
    """Hash: child tag -> task id, the running children this execution's waiting tasks wait for (sync /
    WaitForSystemCallback, or started with the task's token as CallbackFnFTaskToken); cancelling the
    task (a stop, a failure, a timeout) stops the child (common/lineage.py)."""
    return f"{PREFIX}k:{{{tag}}}"


def lease(tag: str) -> str:
    """String: the fencing token of the driver holding the execution, with a TTL."""
    return f"{PREFIX}l:{{{tag}}}"


def execution_keys(tag: str) -> list[str]:
    """[record, inbox, history, lease]: the KEYS every execution script takes, in this order."""
    return [execution(tag), inbox(tag), history(tag), lease(tag)]


def flow(account: str, name: str) -> str:
    """Hash: a flow's attributes and current definition."""
    return f"{PREFIX}f:{{{account}}}:{name}"


def flow_index(account: str) -> str:
    """Zset (all scores 0): the account's flow names, for lexical paging."""
    return f"{PREFIX}fi:{{{account}}}"


def flow_versions(account: str, name: str) -> str:
    """Hash: version number -> JSON {Version, Description, CreatedTime, DefId}; field `#next` counts."""
    return f"{PREFIX}fv:{{{account}}}:{name}"


def flow_aliases(account: str, name: str) -> str:
    """Hash: alias name -> JSON {Name, Description, RoutingConfigurations, CreatedTime, LastModifiedTime}."""
    return f"{PREFIX}fa:{{{account}}}:{name}"


def flow_keys(account: str, name: str) -> list[str]:
    """[flow, index, versions, aliases]: the KEYS of the flow scripts, in this order (one slot: the account)."""
    return [flow(account, name), flow_index(account), flow_versions(account, name), flow_aliases(account, name)]


def executions_index(flow_id: str) -> str:
    """Zset: execution name -> started ms, for ListExecutions."""
    return f"{PREFIX}xi:{{{flow_id}}}"


def definition(def_id: str) -> str:
    """String: a definition text, addressed by its content hash (immutable, shared)."""
    return f"{PREFIX}d:{def_id}"


# Throttling (issue 7). Rules live in two small hashes every front door polls; the per-request
# state (GCRA buckets, the running-executions count) hashes by account, so one script checks them all.
THROTTLE_RULES = PREFIX + "throttle:rules"  # hash: rule id (scope/action/target) -> rule JSON
CHAOS_RULES = PREFIX + "throttle:chaos"  # hash: action -> chaos rule JSON


def gcra_bucket(account: str, scope: str, subject: str, action: str) -> str:
    """String: a GCRA bucket's theoretical arrival time (microseconds of the Redis clock)."""
    return f"{PREFIX}g:{{{account}}}:{scope}:{subject}:{action}"


def running(account: str, shard: int = 0) -> str:
    """String: shard `shard` of how many executions of the account are running (issue 7's cap); the count is
    the sum over `Settings.running_shards` shards (common/runcount.py). Shard 0 keeps the key of the single
    counter it was before issue 17 (`fnf:run:{account}`), so an upgrade keeps the count; shard k > 0 hashes
    by `k:<account>` (its own slot, so an account's starts and ends spread over a Cluster's shards), under a
    prefix of its own so no account's shard 0 is another's shard k."""
    return f"{PREFIX}run:{{{account}}}" if shard == 0 else f"{PREFIX}run.{shard}:{{{shard}:{account}}}"


# Schedules (issue 8). A schedule belongs to a flow by the flow's Id (a flow created again under the
# same name starts with none) and hashes by account, like flows. The due zset is partitioned, as the timers.


def schedules_due_for(member: str, n: int) -> str:
    """The due zset (keys.schedules_due) holding schedule member `member`."""
    return schedules_due(partition(member, n), n)


def schedule(account: str, flow_id: str, name: str) -> str:
    """Hash: a schedule's attributes, its armed tick `next` and its `@every` anchor."""
    return f"{PREFIX}s:{{{account}}}:{flow_id}:{name}"


def schedule_index(account: str, flow_id: str) -> str:
    """Zset (all scores 0): a flow's schedule names, for lexical paging."""
    return f"{PREFIX}si:{{{account}}}:{flow_id}"


def console_session(session_id: str) -> str:
    """String with a TTL: a console session (JSON: access key id, CSRF token, times)."""
    return f"{PREFIX}console:s:{session_id}"


def console_signin_attempts(client: str, minute: int) -> str:
    """Counter with a TTL: console sign-in attempts from one client address in one minute."""
    return f"{PREFIX}console:signin:{client}:{minute}"


def throttled_minute(minute: int) -> str:
    """Counter with a short TTL: ResourceThrottled (429) answers of every front door in one minute (epoch ms // 60000)."""
    return f"{PREFIX}thr429:{minute}"


THROTTLED_MINUTE_TTL = 3900  # s: a minute's 429 count outlives the overview's hour by five minutes

HEARTBEATS = PREFIX + "alive"  # zset: "<worker|timers>:<process name>" -> last heartbeat ms (the console's liveness view)


# Distributed Map (issue 16). A MapRun is addressed like an execution, `<flow id>/<MapRun name>`, so
# ListExecutions(FlowName, MapRunName) finds it without its parent; its keys share that hash tag.


def maprun_wake(p: int, n: int) -> str:
    """Zset: MapRun tag -> when the timers drive it again if nothing else did (ms), partition p of n."""
    return f"{PREFIX}mrwake:{{{partition_tag(p, n)}}}"


def maprun_wake_for(tag: str, n: int) -> str:
    """The MapRun wake-up zset holding MapRun `tag`."""
    return maprun_wake(partition(tag, n), n)



def maprun(tag: str) -> str:
    """Hash: the MapRun record (parent, status, counts, concurrency, tolerances, reader cursor, fence)."""
    return f"{PREFIX}mr:{{{tag}}}"


def maprun_inbox(tag: str) -> str:
    """List: MapRun events not yet seen by its driver (ChildEnded, Updated, Abort)."""
    return f"{PREFIX}mri:{{{tag}}}"


def maprun_lease(tag: str) -> str:
    """String: the fencing token of the driver holding the MapRun, with a TTL."""
    return f"{PREFIX}mrl:{{{tag}}}"


def maprun_running(tag: str) -> str:
    """Hash: child index -> items in it, for the children in flight."""
    return f"{PREFIX}mrr:{{{tag}}}"


def maprun_children(tag: str) -> str:
    """Zset: child execution name -> child index, for ListExecutions with MapRunName."""
    return f"{PREFIX}mrc:{{{tag}}}"


def execution_mapruns(tag: str) -> str:
    """Set: the MapRun tags of an execution that have not ended (its open MapRuns, limited by a setting)."""
    return f"{PREFIX}xm:{{{tag}}}"


def maprun_keys(tag: str) -> list[str]:
    """[record, inbox, lease, running]: the KEYS of maprun_acquire / maprun_commit, in this order."""
    return [maprun(tag), maprun_inbox(tag), maprun_lease(tag), maprun_running(tag)]

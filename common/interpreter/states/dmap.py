"""A Map in distributed mode: one MapRun per attempt, which the parent waits on as on a child flow.

The state asks for one RunActivity of kind `maprun` (WaitForSystemCallback, so it carries a task
token). The engine creates the MapRun (worker/mapruns.py) and answers with its name: MapRunStarted.
The MapRun reports its end to the token: MapRunSucceeded with the Map's result, or MapRunFailed, which
goes to Retry (a new attempt is a new MapRun) and Catch like any task failure. The first attempt after
a redrive of the parent (redrive.py) names the MapRun the Map had (`params["redrive"]`): that run is
reopened and runs again only its items that did not succeed. Everything that depends
on the Map's input (ItemsPath, SourceParameters.X.$, BatchInput, MaxItems.$) is evaluated here, so the
command is all the MapRun needs; the items of an ItemReader are never seen by the interpreter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.fdl.distributed import DistributedSpec, Param
from common.fdl.errors import ExpressionError
from common.fdl.expressions import compile_constructor, compile_expression
from common.fdl.functions import Env
from common.fdl.model import WAIT_FOR_SYSTEM_CALLBACK, StateDef
from common.interpreter.data import NewRules
from common.interpreter.model import CommandType, Errors, EventType
from common.interpreter.outcomes import BLOCKED, Outcome, StateError
from common.interpreter.states.task import activity_id

if TYPE_CHECKING:
    from common.interpreter.engine import Run

KIND = "maprun"


def enter(run: Run, fid: str, frame: dict[str, Any], state: StateDef) -> Outcome:
    first = activity_id(run.next_event_id(), 1)
    entered, effective = run.rules.begin(frame, state, run.token_for(first))
    frame["wait"] = {"k": "dmap", "e": entered, "in": effective, "n": 0, "r": {}, "rc": 0}
    previous = frame.pop("mr", None)  # set by a redrive (redrive.py): the MapRun this Map had
    if isinstance(previous, dict):
        frame["wait"]["redo"] = previous
    return _attempt(run, fid, frame, state)


def resume(run: Run, fid: str, frame: dict[str, Any], state: StateDef, cid: str, event: dict[str, Any]) -> Outcome | None:
    rec = frame["wait"]
    if cid == rec.get("bo"):  # the back-off is over: a new MapRun
        run.resolve(cid)
        rec["bo"] = None
        return _attempt(run, fid, frame, state)
    if cid != rec.get("act"):
        return None
    kind = event["t"]
    if kind == EventType.ACTIVITY_COMPLETED:
        if rec.get("sub"):
            return None  # a duplicate
        result = event.get("result")
        rec["sub"] = True
        rec["mr"] = str(result.get("MapRunName", "")) if isinstance(result, dict) else ""
        run.emit(frame, "MapRunStarted", state.name, {"output": {"MapRunName": rec["mr"]}})
        return BLOCKED
    if kind == EventType.ACTIVITY_FAILED:
        if rec.get("sub"):
            return None
        return _failed(run, fid, frame, state, rec, _text(event.get("error")) or Errors.RUNTIME, _text(event.get("cause")))
    if kind == EventType.TASK_REPORTED:
        if event.get("ok"):
            run.resolve(rec["act"])
            result = event.get("output")
            run.emit(frame, "MapRunSucceeded", state.name, {"output": {"MapRunName": rec.get("mr", "")}})
            return run.finish_state(fid, frame, state, rec["in"], result, int(rec["e"]), rec)
        return _failed(run, fid, frame, state, rec, _text(event.get("error")) or Errors.RUNTIME, _text(event.get("cause")))
    return None


def _failed(run: Run, fid: str, frame: dict[str, Any], state: StateDef, rec: dict[str, Any], error: str, cause: str) -> Outcome:
    run.resolve(rec["act"])
    detail = {"output": {"MapRunName": rec.get("mr", "")}, "error": {"Code": error, "Detail": cause}}
    run.emit(frame, "MapRunFailed", state.name, detail)
    return run.state_failed(fid, frame, state, error, cause, rec["in"])


def _attempt(run: Run, fid: str, frame: dict[str, Any], state: StateDef) -> Outcome:
    rec = frame["wait"]
    spec: DistributedSpec = state.dmap
    entered, attempt = int(rec["e"]), int(rec["n"]) + 1
    aid = activity_id(entered, attempt)
    token = run.token_for(aid)
    rules = run.rules
    assert isinstance(rules, NewRules)  # distributed mode exists in the new syntax only
    roots = rules.roots(state, rec["in"])
    env = Env(roots, rules.seed(entered, f"dmap/{attempt}"))
    previous = rec.pop("redo", None)
    try:
        params = _params(spec, env, run.ctx.get("flow"))
    except StateError as err:
        return run.state_failed(fid, frame, state, err.error, f"{state.name}: {err.cause}", rec["in"], retryable=False)
    if spec.item_constructor is not None:
        params["roots"] = roots
    if isinstance(previous, dict):  # the first attempt after a redrive goes on with the MapRun it had
        params["redrive"] = previous
    rec.update(n=attempt, act=aid, sub=False, mr="", bo=None)
    run.run_activity(fid, {
        "t": CommandType.RUN_ACTIVITY.value, "id": aid, "step": state.name, "attempt": attempt, "kind": KIND,
        "resource": KIND, "action": None, "target": {}, "input": rec["in"], "params": params,
        "mode": WAIT_FOR_SYSTEM_CALLBACK, "timeout_ms": None, "token": token,
    })  # fmt: skip
    return BLOCKED


def _params(spec: DistributedSpec, env: Env, flow_name: Any) -> dict[str, Any]:
    """What the MapRun needs, with every expression over the Map's input evaluated."""
    out: dict[str, Any] = {
        "mode": spec.mode,
        "definition": spec.child_definition(str(flow_name) if flow_name else None),
        "concurrency": spec.max_concurrency,
        "tcount": spec.tolerated_count,
        "tpct": spec.tolerated_percentage,
        "constructor": spec.item_constructor,
    }
    if spec.items_expr is not None:
        items = _eval("ItemsPath", Param(expr=spec.items_expr), env)
        if not isinstance(items, list):
            raise StateError(Errors.RUNTIME, f"ItemsPath {spec.items_expr} must give an array, not {type(items).__name__}")
        out["items"] = items
    if spec.reader is not None:
        source: dict[str, Any] = {"type": spec.reader.source_type, "headers": list(spec.reader.csv_headers or []) or None}
        for key, param in spec.reader.params.items():
            source[key] = _string(f"ItemReader.SourceParameters.{key}", param, env)
        out["source"] = source
    if spec.writer is not None:
        out["writer"] = {key: _string(f"ResultWriter.Parameters.{key}", p, env) for key, p in spec.writer.params.items()}
    limits = [m for m in (spec.max_items, spec.reader.max_items if spec.reader else None) if m is not None]
    for param in limits:
        value = _eval("MaxItems", param, env)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or not float(value).is_integer():
            raise StateError(Errors.RUNTIME, f"MaxItems must be a positive whole number, not {value!r}")
        out["max_items"] = min(int(value), int(out.get("max_items") or value))
    if spec.batcher is not None:
        batch: dict[str, Any] = {"items": spec.batcher.max_items, "bytes": spec.batcher.max_bytes}
        if spec.batcher.batch_input is not None:
            try:
                batch["input"] = compile_constructor(spec.batcher.batch_input)(env)
            except ExpressionError as exc:
                raise StateError(Errors.RUNTIME, f"ItemBatcher.BatchInput: {exc}") from None
        out["batch"] = batch
    return out


def _eval(what: str, param: Param, env: Env) -> Any:
    if param.expr is None:
        return param.value
    try:
        return compile_expression(param.expr)(env)
    except ExpressionError as exc:
        raise StateError(Errors.RUNTIME, f"{what}: {exc}") from None


def _string(what: str, param: Param, env: Env) -> str:
    value = _eval(what, param, env)
    if not isinstance(value, str) or (what.endswith("Bucket") and not value):
        raise StateError(Errors.RUNTIME, f"{what} must give a non-empty string, not {value!r}")
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value)

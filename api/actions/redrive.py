"""RedriveExecution (OpenFnF extension, issue 18): reopen a Failed, Stopped or TimedOut execution where it failed."""
from __future__ import annotations

from typing import Any

from api.actions.context import Call
from api.actions.flows import get_flow
from api.params import required
from common import control
from common.errors import ExecutionNotExists
from common.records import execution_view


async def redrive_execution(call: Call) -> dict[str, Any]:
    """RedriveExecution(FlowName, ExecutionName): the execution, Running again, with its RedriveCount."""
    flow_name, name = required(call.params, "FlowName"), required(call.params, "ExecutionName")
    flow = await get_flow(call, flow_name)
    count = await control.redrive(
        call.store, call.publisher.publish, call.settings, account=call.account, flow=flow, name=name, now=call.now
    )
    fields = await call.store.read_execution(flow["Id"], name)
    if fields is None:  # cannot happen: reopening took its retention TTL away
        raise ExecutionNotExists(name, flow_name)
    view = execution_view(fields, await call.store.definition(fields["defid"]))
    view["RedriveCount"] = count
    return view

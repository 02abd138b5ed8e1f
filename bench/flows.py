"""The flows every scenario runs, in OpenFnF's FDL and the peer's equivalent Amazon States Language."""
from __future__ import annotations

import json

FN_ARN = "acs:fc:cn-hangzhou:1234567890:functions/bench_noop/LATEST"


def fdl_pass_chain(n: int) -> str:
    """n Pass states in a row (new syntax)."""
    states = "".join(
        f"  - Type: Pass\n    Name: P{i}\n    {'Next: P' + str(i + 1) if i < n - 1 else 'End: true'}\n" for i in range(n)
    )
    return f"Type: StateMachine\nSpecVersion: v1\nStartAt: P0\nStates:\n{states}"


def asl_pass_chain(n: int) -> str:
    """n Pass states in a row (ASL)."""
    states: dict[str, dict[str, object]] = {f"P{i}": ({"Type": "Pass", "Next": f"P{i + 1}"} if i < n - 1 else {"Type": "Pass", "End": True}) for i in range(n)}
    return json.dumps({"StartAt": "P0", "States": states})


def fdl_parked(before: int, after: int, seconds: int) -> str:
    """`before` Pass states, a Wait of `seconds`, `after` Pass states (new syntax)."""
    names = [f"P{i}" for i in range(before)] + ["Nap"] + [f"Q{i}" for i in range(after)]
    out = []
    for i, name in enumerate(names):
        nxt = f"Next: {names[i + 1]}" if i < len(names) - 1 else "End: true"
        if name == "Nap":
            out.append(f"  - Type: Wait\n    Name: Nap\n    Seconds: {seconds}\n    {nxt}\n")
        else:
            out.append(f"  - Type: Pass\n    Name: {name}\n    {nxt}\n")
    return f"Type: StateMachine\nSpecVersion: v1\nStartAt: {names[0]}\nStates:\n{''.join(out)}"


def fdl_map_calls() -> str:
    """Map over $Input.items, each item one Function Compute call (bench.handlers:noop)."""
    return (
        "Type: StateMachine\nSpecVersion: v1\nStartAt: Each\nStates:\n"
        "  - Type: Map\n    Name: Each\n    ItemsPath: $Input.items\n"
        "    Processor:\n      StartAt: Call\n      States:\n"
        "        - Type: Task\n          Name: Call\n          Action: FC:InvokeFunction\n"
        f"          Parameters:\n            resourceArn: {FN_ARN}\n            body.$: $Input\n"
        "          End: true\n"
        "    End: true\n"
    )


def asl_map_pass() -> str:
    """Map over $.items, each item a Pass (moto cannot call our functions)."""
    return json.dumps({
        "StartAt": "Each",
        "States": {"Each": {"Type": "Map", "ItemsPath": "$.items",
                            "ItemProcessor": {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": True}}},
                            "End": True}},
    })  # fmt: skip

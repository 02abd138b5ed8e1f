"""The error catalogue of API 2019-03-15: one root, each error with its Code and HTTP status."""
from __future__ import annotations


class FnfError(Exception):
    """Root of every error the API answers with; carries the wire Code and HTTP status."""

    code = "InternalServerError"
    http_status = 500
    template = "An internal error has occurred. Please retry."

    def __init__(self, *args: object, message: str | None = None) -> None:
        self.message = message if message is not None else self.template % args if args else self.template
        super().__init__(self.message)


class ActionNotSupported(FnfError):
    """The Action is not one of the API's."""

    code, http_status = "ActionNotSupported", 400
    template = "The requested API operation '%s' is incorrect. Please check."


class APIVersionNotSupported(FnfError):
    """The Version is not 2019-03-15."""

    code, http_status = "APIVersionNotSupported", 400
    template = "The requested API version '%s' is not supported."


class EntityTooLarge(FnfError):
    """A request or a payload is over its size limit."""

    code, http_status = "EntityTooLarge", 400
    template = "The payload size exceeds maximum allowed size (%s bytes)."


class InvalidArgument(FnfError):
    """A parameter has a wrong value; the message says which and why."""

    code, http_status = "InvalidArgument", 400
    template = "Parameter error."


class MissingRequiredHeader(FnfError):
    """A required header is absent."""

    code, http_status = "MissingRequiredHeader", 400
    template = "The HTTP header '%s' must be specified."


class MissingRequiredParams(FnfError):
    """A required parameter is absent."""

    code, http_status = "MissingRequiredParams", 400
    template = "The HTTP query '%s' must be specified."


class AccessDenied(FnfError):
    """The caller may not act on this resource."""

    code, http_status = "AccessDenied", 403
    template = "The resources doesn't belong to you."


class InvalidAccessKeyID(FnfError):
    """The AccessKeyId is unknown or disabled."""

    code, http_status = "InvalidAccessKeyID", 403
    template = "The AccessKeyId '%s' is invalid or disabled."


class RequestTimeTooSkewed(FnfError):
    """The request Timestamp is too far from the server clock."""

    code, http_status = "RequestTimeTooSkewed", 403
    template = "The difference between the request time '%s' and the server time is too large."


class SignatureNotMatch(FnfError):
    """The request signature does not verify."""

    code, http_status = "SignatureNotMatch", 403
    template = (
        "The request signature we calculated does not match the signature you provided. "
        "Check your access key and signing method."
    )


class PreconditionFailed(FnfError):
    """A precondition of the request does not hold."""

    code, http_status = "PreconditionFailed", 412
    template = "The precondition of the request failed: %s"


class UnsupportedMediaType(FnfError):
    """The body has a content type the API does not read."""

    code, http_status = "UnsupportedMediaType", 415
    template = "The content type '%s' is not supported."


class SignatureNonceUsed(FnfError):
    """A SignatureNonce already used by this access key within the Timestamp window (a replay)."""

    code, http_status = "SignatureNonceUsed", 400
    template = "The request signature nonce '%s' has been used already."


class RequestTimeout(FnfError):
    """The client did not send its whole request body in time."""

    code, http_status = "RequestTimeout", 408
    template = "The request body was not received within %s seconds."


class PathNotFound(FnfError):
    """A path other than `/`: the API is served on `/` only."""

    code, http_status = "PathNotFound", 404
    template = "The path '%s' does not exist; the API is served on '/'."


class MethodNotAllowed(FnfError):
    """An HTTP method other than GET or POST."""

    code, http_status = "MethodNotAllowed", 405
    template = "The HTTP method '%s' is not allowed; use GET or POST."


class ResourceThrottled(FnfError):
    """The caller is over its rate; retry after the advertised delay."""

    code, http_status = "ResourceThrottled", 429
    template = "The request is throttled. Please try again later."

    def __init__(self, retry_after_ms: int, message: str | None = None) -> None:
        super().__init__(message=message)
        self.retry_after_ms = retry_after_ms  # milliseconds, as the SDK reads x-acs-retry-after


class InternalServerError(FnfError):
    """An unexpected failure inside the service (a bug, never bad input)."""


class ServiceUnavailable(FnfError):
    """The service's store (Redis) does not answer: nothing was done, retry later (Alibaba Cloud's common 503)."""

    code, http_status = "ServiceUnavailable", 503
    template = "The request has failed due to a temporary failure of the server."


class FlowAlreadyExists(FnfError):
    """CreateFlow with a name already taken in the account."""

    code, http_status = "FlowAlreadyExists", 409
    template = "Flow %s already exists."


class FlowNotExists(FnfError):
    """The named flow does not exist in the caller's account."""

    code, http_status = "FlowNotExists", 404
    template = "Flow %s does not exist."


class ExecutionNotExists(FnfError):
    """The named execution does not exist for the flow."""

    code, http_status = "ExecutionNotExists", 404
    template = "Execution %s for flow %s does not exist."


class ExecutionAlreadyExists(FnfError):
    """StartExecution with the name of an execution that has ended."""

    code, http_status = "ExecutionAlreadyExists", 400
    template = "Execution %s for flow %s already exists."


class ExecutionAlreadyCompleted(FnfError):
    """StopExecution on an execution that has ended."""

    code, http_status = "ExecutionAlreadyCompleted", 400
    template = "Execution '%s' for flow '%s' has already completed."


class ExecutionNotRedrivable(FnfError):
    """RedriveExecution (an OpenFnF extension) on an execution that is not Failed, Stopped or TimedOut, or redriven the most times allowed."""

    code, http_status = "ExecutionNotRedrivable", 400
    template = "Execution '%s' for flow '%s' cannot be redriven: %s."


class MapRunNotExists(FnfError):
    """The named MapRun does not exist for the execution (distributed Map, issue 16)."""

    code, http_status = "MapRunNotExists", 404
    template = "MapRun %s for execution %s does not exist."


class MapRunAlreadyCompleted(FnfError):
    """UpdateMapRun on a MapRun that has ended."""

    code, http_status = "MapRunAlreadyCompleted", 400
    template = "MapRun %s for execution %s has already completed."


class TaskAlreadyCompleted(FnfError):
    """A second report for a task token."""

    code, http_status = "TaskAlreadyCompleted", 400
    template = "Task %s has already completed."


class TaskInvalidState(FnfError):
    """A task is in a transient state; the report may be retried."""

    code, http_status = "TaskInvalidState", 409
    template = "Task is in an invalid state, please retry."


class ConcurrentUpdateError(FnfError):
    """Two writers raced on one resource; retry."""

    code, http_status = "ConcurrentUpdateError", 409
    template = "Update conflict, please retry."


class ScheduleAlreadyExists(FnfError):
    """CreateSchedule with a name already taken for the flow."""

    code, http_status = "ScheduleAlreadyExists", 409
    template = "The schedule %s already exists in flow %s."


class ScheduleNotExists(FnfError):
    """The named schedule does not exist for the flow."""

    code, http_status = "ScheduleNotExists", 404
    template = "The schedule %s for flow %s does not exist."


class FlowVersionNotExists(FnfError):
    """The flow version named by a Qualifier or FlowVersion does not exist."""

    code, http_status = "FlowVersionNotExists", 404
    template = "Version %s of flow %s does not exist."


class FlowAliasNotExists(FnfError):
    """The flow alias named by a Qualifier does not exist."""

    code, http_status = "FlowAliasNotExists", 404
    template = "Alias %s of flow %s does not exist."


class FlowAliasAlreadyExists(FnfError):
    """CreateFlowAlias with a name already taken for the flow."""

    code, http_status = "FlowAliasAlreadyExists", 409
    template = "Alias %s of flow %s already exists."


def catalogue() -> dict[str, type[FnfError]]:
    """Every error class by its wire Code."""
    out: dict[str, type[FnfError]] = {}
    stack: list[type[FnfError]] = [FnfError]
    while stack:
        cls = stack.pop()
        out[cls.code] = cls
        stack.extend(cls.__subclasses__())
    return out

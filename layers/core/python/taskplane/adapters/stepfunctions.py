"""Step Functions: one state machine per (tenant, workflow), a published version per definition.

Every PUT of a changed definition publishes a state machine version; runs start on the exact
version they use (so a run knows its definition from the first instant, and a resume runs the same
one). The alias ``live`` mirrors the canary split the API makes (or routes all to the latest
version), so executions started outside the API, from the console or an EventBridge rule, are
split the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import error_code, translate
from taskplane.domain.errors import LimitExceeded, Throttled
from taskplane.tracing import NULL_TRACING, Tracing

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

ALIAS = "live"
#: Error codes that mean a task token no longer waits for anyone (finished, stopped, timed out).
_STALE_TOKEN = frozenset({"TaskDoesNotExist", "InvalidToken", "TaskTimedOut"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class ExecutionStatus:
    """What Step Functions says about one execution."""

    status: str  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED | PENDING_REDRIVE
    error: str | None = None
    cause: str | None = None


class StepFunctions(AwsClient["SFNClient"]):
    """State machines, versions, the ``live`` alias and executions.

    Parameters
    ----------
    role_arn
        The role state machines run as (it may invoke the step function).
    prefix
        Every state machine name starts with it (the API's IAM grants are scoped to it).
    log_group_arn
        When set, executions log errors there (``<log group ARN>:*``) and are traced with X-Ray.
    client
        An injected ``stepfunctions`` client; made lazily from ``session`` otherwise.
    """

    def __init__(
        self,
        role_arn: str,
        prefix: str = "taskplane-wf-",
        client: SFNClient | None = None,
        *,
        log_group_arn: str = "",
        session: Any = None,
        tracing: Tracing = NULL_TRACING,
    ):
        self._role_arn = role_arn
        self._prefix = prefix
        self._log_group_arn = log_group_arn
        #: an execution's input carries the trace of its run to every step function task
        self.tracing = tracing
        super().__init__("stepfunctions", client, session=session)

    def machine_name(self, tenant: str, workflow: str) -> str:
        """A name unique per (tenant, workflow), readable, within Step Functions' 80 characters.

        Examples
        --------
        >>> StepFunctions("arn:aws:iam::1:role/r").machine_name("acme", "order-fulfillment")
        'taskplane-wf-order-fulfillment-891e8d1ebf1e'
        """
        digest = hashlib.sha256(f"{tenant}\n{workflow}".encode()).hexdigest()[:12]
        readable = _UNSAFE.sub("-", workflow)[: 80 - len(self._prefix) - len(digest) - 1]
        return f"{self._prefix}{readable}-{digest}"

    def publish(
        self, machine_arn: str | None, name: str, definition: str, description: str, tags: dict[str, str]
    ) -> tuple[str, str]:
        """Create or update the state machine with ``definition`` and publish it as a version.

        Returns ``(state machine ARN, version ARN)``.
        """
        try:
            if machine_arn is not None:
                try:
                    updated = self.client.update_state_machine(
                        stateMachineArn=machine_arn,
                        definition=definition,
                        publish=True,
                        versionDescription=description[:256],
                    )
                    return machine_arn, updated["stateMachineVersionArn"]
                except ClientError as exc:
                    if error_code(exc) != "StateMachineDoesNotExist":
                        raise
            extra: dict[str, Any] = {}
            if self._log_group_arn:
                extra["loggingConfiguration"] = {
                    "level": "ERROR",
                    "includeExecutionData": False,
                    "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": self._log_group_arn}}],
                }
                extra["tracingConfiguration"] = {"enabled": True}
            created = self.client.create_state_machine(
                name=name,
                definition=definition,
                roleArn=self._role_arn,
                type="STANDARD",
                publish=True,
                versionDescription=description[:256],
                tags=[{"key": k, "value": v[:256]} for k, v in tags.items()],
                **extra,
            )
            return created["stateMachineArn"], created["stateMachineVersionArn"]
        except ClientError as exc:
            if error_code(exc) == "InvalidDefinition":  # a compiler bug, never the user's input
                raise RuntimeError(f"Step Functions rejected the compiled definition: {exc}") from exc
            if error_code(exc) == "StateMachineLimitExceeded":
                raise LimitExceeded(
                    "the account holds as many state machines as Step Functions allows (100,000 by "
                    "default): delete workflows no one runs, or ask the operator to raise the account's "
                    "'Maximum number of registered state machines' quota",
                    [{"field": "name", "problem": "state_machine_quota"}],
                ) from exc
            raise translate(exc, "publishing the workflow") from exc
        except BotoCoreError as exc:
            raise translate(exc, "publishing the workflow") from exc

    def definition(self, version_arn: str) -> dict[str, Any] | None:
        """The ASL of a published version, as Step Functions runs it; None once the version is deleted."""
        try:
            return json.loads(self.client.describe_state_machine(stateMachineArn=version_arn)["definition"])
        except ClientError as exc:
            if error_code(exc) == "StateMachineDoesNotExist":
                return None
            raise translate(exc, "reading the state machine") from exc
        except BotoCoreError as exc:
            raise translate(exc, "reading the state machine") from exc

    def prune(self, machine_arn: str, *, keep: set[str], newest: int) -> list[str]:
        """Delete the machine's versions past the ``newest`` ones, except ``keep`` and any version
        with a running execution. Answers the deleted version ARNs.

        Step Functions keeps at most 1,000 versions per state machine and refuses to publish more.
        A deleted version stops no execution, but starts none either, and one an alias routes to
        cannot be deleted (``ConflictException``: left alone, like a concurrent publish).
        """
        deleted = []
        try:
            versions: list[str] = []
            token: dict[str, str] = {}
            while True:  # (botocore has no paginator for it)
                page = self.client.list_state_machine_versions(stateMachineArn=machine_arn, **token)  # type: ignore[arg-type]
                versions += [v["stateMachineVersionArn"] for v in page["stateMachineVersions"]]
                if not page.get("nextToken"):
                    break
                token = {"nextToken": page["nextToken"]}
            for arn in versions[newest:]:  # newest first
                if arn in keep:
                    continue
                running = self.client.list_executions(
                    stateMachineArn=arn, statusFilter="RUNNING", maxResults=1
                )
                if running["executions"]:
                    continue
                try:
                    self.client.delete_state_machine_version(stateMachineVersionArn=arn)
                except ClientError as exc:
                    if error_code(exc) != "ConflictException":
                        raise
                    continue
                deleted.append(arn)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "pruning the workflow's versions") from exc
        return deleted

    def route(self, machine_arn: str, weights: dict[str, int]) -> None:
        """Point the ``live`` alias at versions by weight (``{version ARN: percent}``, at most two)."""
        routing: list[Any] = [{"stateMachineVersionArn": arn, "weight": w} for arn, w in weights.items()]
        try:
            try:
                self.client.update_state_machine_alias(
                    stateMachineAliasArn=f"{machine_arn}:{ALIAS}", routingConfiguration=routing
                )
            except ClientError as exc:
                if error_code(exc) not in ("ResourceNotFound", "StateMachineDoesNotExist"):
                    raise
                self.client.create_state_machine_alias(name=ALIAS, routingConfiguration=routing)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "routing the workflow's alias") from exc

    def start(self, version_arn: str, name: str, payload: dict[str, Any]) -> str:
        """Start an execution of a version; the same name and input answer the same execution."""
        payload, ended = self.tracing.launch(payload)
        try:
            arn = self.client.start_execution(
                stateMachineArn=version_arn, name=name, input=json.dumps(payload, separators=(",", ":"))
            )["executionArn"]
        except (ClientError, BotoCoreError) as exc:
            ended([exc])
            if isinstance(exc, ClientError) and error_code(exc) == "ExecutionLimitExceeded":
                # The account's open executions (1,000,000 by default) are all running: come back later.
                raise Throttled(
                    "the account has as many runs open as Step Functions allows; try again later",
                    retry_after_s=30,
                ) from exc
            raise translate(exc, "starting the run") from exc
        except BaseException as exc:
            ended([exc])
            raise
        ended([None])
        return arn

    def stop(self, execution_arn: str, cause: str) -> None:
        try:
            self.client.stop_execution(executionArn=execution_arn, cause=cause[:32768])
        except ClientError as exc:
            if error_code(exc) == "ExecutionDoesNotExist":
                return
            raise translate(exc, "stopping the run") from exc
        except BotoCoreError as exc:
            raise translate(exc, "stopping the run") from exc

    def status(self, execution_arn: str) -> ExecutionStatus | None:
        """The execution's status, or None when Step Functions does not know it."""
        try:
            found = self.client.describe_execution(executionArn=execution_arn)
        except ClientError as exc:
            if error_code(exc) == "ExecutionDoesNotExist":
                return None
            raise translate(exc, "reading the run's execution") from exc
        except BotoCoreError as exc:
            raise translate(exc, "reading the run's execution") from exc
        return ExecutionStatus(status=found["status"], error=found.get("error"), cause=found.get("cause"))

    def send_success(self, token: str, output: dict[str, Any] | None = None) -> bool:
        """Resume the task waiting on ``token``; False when nothing waits on it any more."""
        try:
            self.client.send_task_success(taskToken=token, output=json.dumps(output or {}))
        except ClientError as exc:
            if error_code(exc) in _STALE_TOKEN:
                return False
            raise translate(exc, "releasing a node") from exc
        except BotoCoreError as exc:
            raise translate(exc, "releasing a node") from exc
        return True

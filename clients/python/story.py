"""The user story, through the Python client generated from the OpenAPI
document (clients/generate.sh): no raw HTTP, no casts.

Two accounts; in A a read-only user refused a change; A's role `approver`,
trusting B with an ExternalId, assumed by B's user `releaser`; a pipeline with an uploaded
source, a build, a manual approval (given by B in A's role) and a deploy,
run to success; the build's artifact downloaded; LookupEvents finding the
approval and the refusal.

    PIPEWRIGHT_URL=http://127.0.0.1:8080 python3 story.py
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pipewright_client import AuthenticatedClient, Client
from pipewright_client.api.accounts import create_account
from pipewright_client.api.audit import lookup_events
from pipewright_client.api.auth import get_caller_identity, sign_in
from pipewright_client.api.executions import (
    get_action_execution_artifact,
    get_pipeline_execution,
    get_pipeline_state,
    list_action_executions,
    put_approval_result,
    put_source_revision,
)
from pipewright_client.api.iam import (
    attach_user_policy,
    create_login_profile,
    create_role,
    create_user,
    put_role_policy,
    put_user_policy,
)
from pipewright_client.api.pipelines import create_pipeline, delete_pipeline, get_pipeline
from pipewright_client.api.sts import assume_role
from pipewright_client.models import (
    ApprovalRequest,
    ApprovalResult,
    ApprovalStatus,
    AssumeRoleRequest,
    AssumeRoleResponse,
    AuditEvent,
    CreateAccountRequest,
    CreateAccountResponse,
    CreatePipelineRequest,
    CreatePipelineResponse,
    CreateRoleRequest,
    CreateUserRequest,
    ErrorBody,
    ErrorCode,
    GetExecutionResponse,
    GetPipelineResponse,
    IdentityType,
    ListActionExecutionsResponse,
    LoginProfileRequest,
    LookupResponse,
    PolicyArnRequest,
    PolicyDocument,
    PolicyDocumentRequest,
    PolicyEffect,
    PolicyStatement,
    PolicyCondition,
    ConditionKeys,
    PrincipalsByKind,
    RoleResponse,
    SessionTokens,
    SignInRequest,
    SourceRevisionResponse,
    Status,
    UserResponse,
    CallerIdentity,
    PipelineStateResponse,
)
from pipewright_client.types import UNSET, File, Response, Unset

URL = os.environ.get("PIPEWRIGHT_URL", "http://127.0.0.1:8080")
PASSWORD = "correct horse battery"
EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
RUN = uuid.uuid4().hex[:8]

T = TypeVar("T")


class StoryFailed(Exception):
    pass


def step(text: str) -> None:
    print(f"python story: {text}", flush=True)


def expect(response: Response[Any], kind: type[T]) -> T:
    """The typed answer of a call that must succeed."""
    parsed = response.parsed
    if not isinstance(parsed, kind):
        raise StoryFailed(f"HTTP {int(response.status_code)}: {response.content.decode(errors='replace')}")
    return parsed


def refused(response: Response[Any], status: int, code: ErrorCode) -> ErrorBody:
    """The typed error of a call that must be refused."""
    parsed = response.parsed
    if int(response.status_code) != status or not isinstance(parsed, ErrorBody) or parsed.code != code:
        raise StoryFailed(f"expected {status} {code.value}, got HTTP {int(response.status_code)}: {response.content!r}")
    return parsed


def eventually(what: str, probe: Callable[[], T | None], seconds: float = 120.0) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.5)
    raise StoryFailed(f"timed out waiting for {what}")


def signed_in(account: str, user: str) -> AuthenticatedClient:
    anonymous = Client(base_url=URL)
    body = SignInRequest(account=account, user_name=user, password=PASSWORD)
    tokens = expect(sign_in.sync_detailed(client=anonymous, body=body), SessionTokens)
    return AuthenticatedClient(base_url=URL, token=tokens.access_token)


def new_account(alias: str) -> str:
    # Sign-up is open, or needs the operator's token (PIPEWRIGHT_SIGNUP).
    operator = AuthenticatedClient(base_url=URL, token=os.environ.get("PIPEWRIGHT_OPERATOR_TOKEN", "-"))
    body = CreateAccountRequest(alias=alias, root_password=PASSWORD)
    return expect(create_account.sync_detailed(client=operator, body=body), CreateAccountResponse).account_id


def site_archive() -> bytes:
    """examples/site as a gzipped tar, made in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted((EXAMPLES / "site").iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def main() -> None:
    step("two accounts")
    a = new_account(f"py-a-{RUN}")
    b = new_account(f"py-b-{RUN}")
    a_root = signed_in(a, "root")
    b_root = signed_in(b, "root")

    step("A's read-only user is refused a change")
    expect(create_user.sync_detailed(client=a_root, body=CreateUserRequest(user_name="reader")), UserResponse)
    create_login_profile.sync_detailed("reader", client=a_root, body=LoginProfileRequest(password=PASSWORD))
    read_only = PolicyArnRequest(policy_arn="arn:pw:iam::pw:policy/PipewrightReadOnlyAccess")
    attached = attach_user_policy.sync_detailed("reader", client=a_root, body=read_only)
    if int(attached.status_code) != 200:
        raise StoryFailed(f"attaching the read-only policy: {attached.content!r}")
    reader = signed_in(a, "reader")

    declaration = json.loads((EXAMPLES / "upload-build-approve-deploy.json").read_text())
    created = create_pipeline.sync_detailed(client=a_root, body=CreatePipelineRequest.from_dict(declaration))
    pipeline = expect(created, CreatePipelineResponse).pipeline.name
    arn = expect(get_pipeline.sync_detailed(pipeline, client=reader), GetPipelineResponse).metadata.pipeline_arn
    refusal = refused(delete_pipeline.sync_detailed(pipeline, client=reader), 403, ErrorCode.ACCESSDENIEDEXCEPTION)
    step(f"refused: {refusal.message}")

    step("A's role `approver` trusts B with an ExternalId; B's user releaser assumes it")
    principals = PrincipalsByKind()
    principals["PW"] = f"arn:pw:iam::{b}:root"
    external_id = ConditionKeys()
    external_id["sts:ExternalId"] = f"ext-{RUN}"
    condition = PolicyCondition()
    condition["StringEquals"] = external_id
    trust = PolicyDocument(
        version="2012-10-17",
        statement=[
            PolicyStatement(
                effect=PolicyEffect.ALLOW,
                principal=principals,
                action="sts:AssumeRole",
                condition=condition,
            )
        ],
    )
    role = expect(
        create_role.sync_detailed(
            client=a_root, body=CreateRoleRequest(role_name="approver", assume_role_policy_document=trust)
        ),
        RoleResponse,
    ).role
    may_approve = PolicyDocument(
        version="2012-10-17",
        statement=[
            PolicyStatement(
                effect=PolicyEffect.ALLOW,
                action=["codepipeline:GetPipelineState", "codepipeline:PutApprovalResult"],
                resource=[arn, f"{arn}/Approve/Review"],
            )
        ],
    )
    put = put_role_policy.sync_detailed("approver", "approve", client=a_root, body=PolicyDocumentRequest(policy_document=may_approve))
    if int(put.status_code) != 200:
        raise StoryFailed(f"the role's policy: {put.content!r}")
    expect(create_user.sync_detailed(client=b_root, body=CreateUserRequest(user_name="releaser")), UserResponse)
    create_login_profile.sync_detailed("releaser", client=b_root, body=LoginProfileRequest(password=PASSWORD))
    may_assume = PolicyDocument(
        version="2012-10-17",
        statement=PolicyStatement(effect=PolicyEffect.ALLOW, action="sts:AssumeRole", resource=role.arn),
    )
    put = put_user_policy.sync_detailed(
        "releaser", "assume-approver", client=b_root, body=PolicyDocumentRequest(policy_document=may_assume)
    )
    if int(put.status_code) != 200:
        raise StoryFailed(f"the user's policy: {put.content!r}")
    releaser = signed_in(b, "releaser")
    wrong = assume_role.sync_detailed(
        client=releaser, body=AssumeRoleRequest(role_arn=role.arn, role_session_name="release", external_id="guess")
    )
    refused(wrong, 403, ErrorCode.ACCESSDENIEDEXCEPTION)
    assumed = expect(
        assume_role.sync_detailed(
            client=releaser,
            body=AssumeRoleRequest(role_arn=role.arn, role_session_name="release", external_id=f"ext-{RUN}"),
        ),
        AssumeRoleResponse,
    )
    approver = AuthenticatedClient(base_url=URL, token=assumed.credentials.access_token)
    me = expect(get_caller_identity.sync_detailed(client=approver), CallerIdentity)
    step(f"B acts in A as {me.arn}")

    step("an archive uploaded as the Upload source's revision")
    upload = put_source_revision.sync_detailed(
        pipeline,
        "Upload",
        client=a_root,
        body=File(payload=io.BytesIO(site_archive()), file_name="site.tar.gz", mime_type="application/octet-stream"),
        x_pw_revision_summary="the python story's page",
    )
    execution = expect(upload, SourceRevisionResponse).pipeline_execution_id

    def waiting_approval() -> uuid.UUID | None:
        state = expect(get_pipeline_state.sync_detailed(pipeline, client=approver), PipelineStateResponse)
        for stage in state.stage_states:
            if stage.stage_name != "Approve":
                continue
            for action in stage.action_states:
                latest = action.latest_execution
                if latest and latest.pipeline_execution_id == execution and latest.status == Status.INPROGRESS:
                    if isinstance(latest.token, uuid.UUID):
                        return latest.token
        return None

    token = eventually("the build, then the approval to wait", waiting_approval)
    step("the build ran; B, in A's role, approves")
    approval = ApprovalRequest(token=token, result=ApprovalResult(status=ApprovalStatus.APPROVED, summary="ship it"))
    approved = put_approval_result.sync_detailed(pipeline, "Approve", "Review", client=approver, body=approval)
    if int(approved.status_code) != 200:
        raise StoryFailed(f"approving: {approved.content!r}")

    def finished() -> Status | None:
        got = expect(get_pipeline_execution.sync_detailed(pipeline, str(execution), client=a_root), GetExecutionResponse)
        status = got.pipeline_execution.status
        return None if status in (Status.INPROGRESS, Status.STOPPING) else status

    outcome = eventually("the deploy", finished)
    if outcome != Status.SUCCEEDED:
        raise StoryFailed(f"the execution ended {outcome.value}")
    step("the execution succeeded")

    step("the build's artifact downloaded")
    actions = expect(
        list_action_executions.sync_detailed(pipeline, client=reader, pipeline_execution_id=str(execution)),
        ListActionExecutionsResponse,
    )
    build = next(d for d in actions.action_execution_details if d.action_name == "Package")
    if build.status != Status.SUCCEEDED:
        raise StoryFailed(f"Package ended {build.status.value}")
    artifact = build.output.output_artifacts[0].name
    download = get_action_execution_artifact.sync_detailed(pipeline, str(build.action_execution_id), artifact, client=reader)
    archive = expect(download, File)
    with tarfile.open(fileobj=archive.payload) as tar:
        names = tar.getnames()
    if not any(n.endswith("index.html") for n in names):
        raise StoryFailed(f"the artifact holds {names}")
    step(f"{artifact} holds {names}")

    step("LookupEvents finds the approval and the refusal")

    def found(event_name: str, error_code: str | Unset = UNSET) -> AuditEvent | None:
        page = expect(
            lookup_events.sync_detailed(client=a_root, event_name=event_name, error_code=error_code), LookupResponse
        )
        return page.events[0] if page.events else None

    approval_event = eventually("the approval's event", lambda: found("PutApprovalResult"), 30)
    if approval_event.user_identity.type_ != IdentityType.ASSUMEDROLE or approval_event.http_status != 200:
        raise StoryFailed(f"the approval was recorded as {approval_event.to_dict()}")
    step(f"PutApprovalResult by {approval_event.user_identity.arn} (from account {approval_event.user_identity.source_account})")
    refusal_event = eventually(
        "the refusal's event", lambda: found("DeletePipeline", error_code="AccessDeniedException"), 30
    )
    if refusal_event.user_identity.user_name != "reader" or refusal_event.http_status != 403:
        raise StoryFailed(f"the refusal was recorded as {refusal_event.to_dict()}")
    step(f"DeletePipeline refused to {refusal_event.user_identity.arn}: {refusal_event.error_code}")
    step("done")


if __name__ == "__main__":
    try:
        main()
    except StoryFailed as failure:
        print(f"python story FAILED: {failure}", file=sys.stderr)
        sys.exit(1)

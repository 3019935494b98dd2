"""A job worker for the custom action type "Scan" (Test/Custom/Scan/1), written
against the Python client generated from Pipewright's OpenAPI document
(clients/generate.sh). It signs in with an access key whose user has the
managed policy PipewrightCustomActionAccess, and then, in a loop:

1. PollForJobs for Scan jobs of its project (`queryParam`), waiting up to 20 s;
2. AcknowledgeJob with the job's nonce (another worker may have it: skip);
3. downloads the input artifact through the job's URL and counts the lines
   that say TODO in its files (the "findings");
4. uploads a report (report.txt) as the output artifact, through its URL;
5. PutJobSuccessResult with the output variable FINDINGS (read downstream as
   `#{Scan.FINDINGS}` when the action's namespace is Scan) — or, when there
   are more findings than the action's MaxFindings, PutJobFailureResult.

The action type, as CreateCustomActionType takes it:

    {"category": "Test", "provider": "Scan", "version": "1",
     "configurationProperties": [
       {"name": "Project", "required": true, "key": true, "secret": false, "queryable": true},
       {"name": "MaxFindings", "required": false, "key": false, "secret": false, "type": "Number"}],
     "inputArtifactDetails": {"minimumCount": 1, "maximumCount": 1},
     "outputArtifactDetails": {"minimumCount": 1, "maximumCount": 1}}

Run it (after `bash clients/generate.sh`):

    PIPEWRIGHT_URL=http://127.0.0.1:8080 \\
    PIPEWRIGHT_ACCESS_KEY_ID=AKIA... PIPEWRIGHT_SECRET_ACCESS_KEY=... \\
    PYTHONPATH=clients/python python3 examples/job-worker.py --project web [--once]
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import sys
import tarfile
import time
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from pipewright_client import AuthenticatedClient, Client
from pipewright_client.api.auth import get_token_for_access_key
from pipewright_client.api.jobs import (
    acknowledge_job,
    get_job_artifact,
    poll_for_jobs,
    put_job_artifact,
    put_job_failure_result,
    put_job_success_result,
)
from pipewright_client.models import (
    AcknowledgeJobRequest,
    AcknowledgeJobResponse,
    ActionTypeId,
    ActionCategory,
    ErrorBody,
    ExecutionDetails,
    FailureDetails,
    JobArtifact,
    JobArtifactLocation,
    JobArtifactResponse,
    JobResultResponse,
    JobView,
    PollForJobsRequest,
    PollForJobsRequestQueryParam,
    PollForJobsResponse,
    PutJobFailureResultRequest,
    PutJobSuccessResultRequest,
    PutJobSuccessResultRequestOutputVariables,
    TokenRequest,
    TokenResponse,
)
from pipewright_client.types import File, Response

T = TypeVar("T")

SCAN = ActionTypeId(category=ActionCategory.TEST, owner="Custom", provider="Scan", version="1")


class CallFailed(Exception):
    pass


def say(text: str) -> None:
    print(f"job-worker: {text}", flush=True)


def expect(response: Response[Any], kind: type[T]) -> T:
    """The typed answer of a call that must succeed."""
    parsed = response.parsed
    if not isinstance(parsed, kind):
        raise CallFailed(f"HTTP {int(response.status_code)}: {response.content.decode(errors='replace')}")
    return parsed


class Session:
    """An access token for the access key, made again before it expires."""

    def __init__(self, url: str, key_id: str, secret: str) -> None:
        self.url = url
        self.anonymous = Client(base_url=url)
        self.request = TokenRequest(access_key_id=key_id, secret_access_key=secret)
        self.expires = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
        self.current: AuthenticatedClient | None = None

    def client(self) -> AuthenticatedClient:
        now = datetime.datetime.now(datetime.timezone.utc)
        if self.current is None or self.expires - now < datetime.timedelta(minutes=1):
            answer = get_token_for_access_key.sync_detailed(client=self.anonymous, body=self.request)
            tokens = expect(answer, TokenResponse)
            self.expires = tokens.expiration
            # A poll waits up to 20 s for a job: the client waits longer.
            self.current = AuthenticatedClient(base_url=self.url, token=tokens.access_token, timeout=None)
        return self.current


def token_of(artifact: JobArtifact) -> str:
    """The artifact token in the URL the job's data gives."""
    if not isinstance(artifact.location, JobArtifactLocation):
        raise CallFailed(f"artifact {artifact.name} has no URL: the job was not dispatched")
    return parse_qs(urlsplit(artifact.location.url).query)["token"][0]


def findings_in(archive: bytes) -> list[str]:
    """`path:line: text` of every line that says TODO in the archive's files."""
    found = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            extracted = tar.extractfile(member)
            if extracted is None:
                continue
            for number, line in enumerate(extracted.read().decode(errors="replace").splitlines(), start=1):
                if "TODO" in line:
                    found.append(f"{member.name}:{number}: {line.strip()}")
    return found


def report_archive(findings: list[str]) -> bytes:
    """report.txt in a tar archive, made in memory."""
    text = f"findings: {len(findings)}\n" + "".join(f"{f}\n" for f in findings)
    data = text.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("report.txt")
        info.size = len(data)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def run(client: AuthenticatedClient, job: JobView) -> None:
    job_id = str(job.id)
    taken = acknowledge_job.sync_detailed(job_id, client=client, body=AcknowledgeJobRequest(nonce=job.nonce))
    if isinstance(taken.parsed, ErrorBody):
        say(f"job {job_id} not taken ({taken.parsed.code}): another worker has it")
        return
    expect(taken, AcknowledgeJobResponse)
    configuration = job.data.action_configuration.configuration.additional_properties
    say(f"job {job_id}: scanning project {configuration.get('Project')}")
    try:
        source = job.data.input_artifacts[0]
        downloaded = get_job_artifact.sync_detailed(job_id, source.name, client=client, token=token_of(source))
        if int(downloaded.status_code) != 200:
            raise CallFailed(f"the input could not be read: HTTP {int(downloaded.status_code)}")
        findings = findings_in(downloaded.content)
        report = job.data.output_artifacts[0]
        body = File(payload=io.BytesIO(report_archive(findings)), file_name="report.tar")
        sent = put_job_artifact.sync_detailed(job_id, report.name, client=client, token=token_of(report), body=body)
        expect(sent, JobArtifactResponse)
        most = int(configuration.get("MaxFindings", "1000000"))
        if len(findings) > most:
            failure = FailureDetails(type_="JobFailed", message=f"{len(findings)} findings, more than {most}")
            ended = put_job_failure_result.sync_detailed(
                job_id, client=client, body=PutJobFailureResultRequest(failure_details=failure)
            )
            expect(ended, JobResultResponse)
            say(f"job {job_id}: failed with {len(findings)} findings")
            return
        variables = PutJobSuccessResultRequestOutputVariables()
        variables.additional_properties = {"FINDINGS": str(len(findings))}
        details = ExecutionDetails(summary=f"{len(findings)} findings", external_execution_id=job_id, percent_complete=100)
        result = PutJobSuccessResultRequest(output_variables=variables, execution_details=details)
        expect(put_job_success_result.sync_detailed(job_id, client=client, body=result), JobResultResponse)
        say(f"job {job_id}: succeeded with {len(findings)} findings")
    except Exception as e:  # The job fails with what went wrong, never hangs.
        failure = FailureDetails(type_="JobFailed", message=f"the worker failed: {e}"[:5000])
        put_job_failure_result.sync_detailed(job_id, client=client, body=PutJobFailureResultRequest(failure_details=failure))
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description="A job worker for the custom action Scan")
    parser.add_argument("--project", required=True, help="the Project (queryable) whose jobs it takes")
    parser.add_argument("--once", action="store_true", help="stop after one job")
    parser.add_argument("--give-up-after", type=float, default=0, help="seconds without a job after which to stop (0: never)")
    arguments = parser.parse_args()
    session = Session(
        os.environ.get("PIPEWRIGHT_URL", "http://127.0.0.1:8080"),
        os.environ["PIPEWRIGHT_ACCESS_KEY_ID"],
        os.environ["PIPEWRIGHT_SECRET_ACCESS_KEY"],
    )
    query = PollForJobsRequestQueryParam()
    query.additional_properties = {"Project": arguments.project}
    request = PollForJobsRequest(action_type_id=SCAN, query_param=query, max_batch_size=1, wait_time_seconds=20)
    say(f"polling for Scan jobs of project {arguments.project}")
    idle_since = time.monotonic()
    while True:
        client = session.client()
        polled = expect(poll_for_jobs.sync_detailed(client=client, body=request), PollForJobsResponse)
        for job in polled.jobs:
            run(client, job)
            idle_since = time.monotonic()
            if arguments.once:
                return 0
        if arguments.give_up_after and time.monotonic() - idle_since > arguments.give_up_after:
            say("no job came: stopping")
            return 1


if __name__ == "__main__":
    sys.exit(main())

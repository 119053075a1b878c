"""The seed walkthrough (shared/cognito/seed-walkthrough.txt) replayed with the real AWS CLI and curl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.localcognito.conftest import ROLE

AWS = str(Path(sys.executable).with_name("aws"))
SEED_CSV = """\
name,given_name,family_name,middle_name,nickname,preferred_username,profile,picture,website,email,email_verified,gender,birthdate,zoneinfo,locale,phone_number,phone_number_verified,address,updated_at,cognito:mfa_enabled,cognito:username
johndoe,,,,,,,,,johndoe@example.com,TRUE,,,,,,FALSE,,,FALSE,johndoe
janeroe,,,,,,,,,janeroe@example.com,TRUE,,,,,,FALSE,,,FALSE,janeroe
"""


def aws(endpoint: str, *args: str) -> dict:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "ap-northeast-1"}
    out = subprocess.run([AWS, "--endpoint-url", endpoint, "--output", "json", *args], env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout) if out.stdout.strip() else {}


def test_seed_walkthrough_with_the_aws_cli(service, tmp_path):
    url = service.endpoint_url
    pool = aws(url, "cognito-idp", "create-user-pool", "--pool-name", "seed-walkthrough",
               "--auto-verified-attributes", "email")["UserPool"]["Id"]
    header = aws(url, "cognito-idp", "get-csv-header", "--user-pool-id", pool)
    assert header["UserPoolId"] == pool
    assert ",".join(header["CSVHeader"]) == SEED_CSV.splitlines()[0]

    job = aws(url, "cognito-idp", "create-user-import-job", "--job-name", "myjob", "--user-pool-id", pool,
              "--cloud-watch-logs-role-arn", ROLE)["UserImportJob"]
    assert job["Status"] == "Created" and job["JobId"].startswith("import-")
    assert (job["ImportedUsers"], job["SkippedUsers"], job["FailedUsers"]) == (0, 0, 0)
    assert "X-Amz-Expires=899" in job["PreSignedUrl"]

    csv = tmp_path / "user-import-csv-template.csv"
    csv.write_text(SEED_CSV)
    curl = subprocess.run(["curl", "-sS", "-f", "-T", str(csv), "-H", "x-amz-server-side-encryption:aws:kms",
                           job["PreSignedUrl"]], capture_output=True, text=True, timeout=30)
    assert curl.returncode == 0, curl.stderr

    started = aws(url, "cognito-idp", "start-user-import-job", "--user-pool-id", pool,
                  "--job-id", job["JobId"])["UserImportJob"]
    assert started["Status"] == "Pending" and "StartDate" in started
    for _ in range(200):
        described = aws(url, "cognito-idp", "describe-user-import-job", "--user-pool-id", pool,
                        "--job-id", job["JobId"])["UserImportJob"]
        if described["Status"] not in ("Pending", "InProgress"):
            break
        time.sleep(0.05)
    assert described["Status"] == "Succeeded"
    assert (described["ImportedUsers"], described["SkippedUsers"], described["FailedUsers"]) == (2, 0, 0)
    assert described["CompletionMessage"] == "Import Job Completed Successfully."

    users = {u["Username"]: u for u in aws(url, "cognito-idp", "list-users", "--user-pool-id", pool)["Users"]}
    assert set(users) == {"johndoe", "janeroe"}
    for name, u in users.items():
        attrs = {a["Name"]: a["Value"] for a in u["Attributes"]}
        assert u["UserStatus"] == "RESET_REQUIRED" and u["Enabled"] is True
        assert attrs["email"] == f"{name}@example.com" and attrs["email_verified"] == "true"
        assert attrs["phone_number_verified"] == "false" and attrs["name"] == name
        assert len(attrs["sub"]) == 36

    events = aws(url, "logs", "get-log-events", "--log-group-name",
                 f"/aws/cognito/userpools/{pool}/seed-walkthrough", "--log-stream-name",
                 f"{job['JobId']}/myjob", "--start-from-head")["events"]
    assert [e["message"] for e in events] == [
        "[SUCCEEDED] Line Number 1 - The import succeeded.",
        "[SUCCEEDED] Line Number 2 - The import succeeded.",
    ]
    assert all(abs(e["timestamp"] / 1000 - time.time()) < 300 for e in events)

"""How fast the local Cognito service imports: a 100,000-user CSV through the real HTTP path.

Creates a pool, a job, uploads with the pre-signed URL, starts it, polls until it ends, and reports
users/second between StartDate and CompletionDate, plus the wall time including upload and polling.
``--users=N`` changes the size.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from pipeline.cognito import isolated_session
from pipeline.localcognito import LocalCognito, ServiceConfig

ROLE = "arn:aws:iam::123456789012:role/service-role/Cognito-UserImport-Role"


OPTIONS = ("--users=N",)   # what main() reads from argv; python -m bench --help lists them

def build_csv(header: list[str], n: int) -> bytes:
    cols = {c: i for i, c in enumerate(header)}
    lines = [",".join(header)]
    blank = [""] * len(header)
    for i in range(n):
        row = list(blank)
        row[cols["cognito:username"]] = f"user{i:07d}"
        row[cols["email"]] = f"user{i:07d}@example.com"
        row[cols["email_verified"]] = "true"
        row[cols["name"]] = f"User\\, Number {i}"
        row[cols["cognito:mfa_enabled"]] = "false"
        lines.append(",".join(row))
    return ("\n".join(lines) + "\n").encode()


def main(argv: list[str]) -> dict[str, Any]:
    users = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--users=")), 100_000)
    with LocalCognito(config=ServiceConfig()) as svc:
        # a session that reads no AWS profile or config: an AWS_PROFILE naming no profile crashed the bench
        client = isolated_session("us-east-1").client("cognito-idp", endpoint_url=svc.endpoint_url)
        pool = client.create_user_pool(PoolName="bench", AutoVerifiedAttributes=["email"])["UserPool"]["Id"]
        header = client.get_csv_header(UserPoolId=pool)["CSVHeader"]
        body = build_csv(header, users)
        job = client.create_user_import_job(JobName="bench", UserPoolId=pool,
                                            CloudWatchLogsRoleArn=ROLE)["UserImportJob"]
        t0 = time.perf_counter()
        request = urllib.request.Request(job["PreSignedUrl"], data=body, method="PUT",
                                         headers={"x-amz-server-side-encryption": "aws:kms"})
        urllib.request.urlopen(request).close()
        client.start_user_import_job(UserPoolId=pool, JobId=job["JobId"])
        while True:
            described = client.describe_user_import_job(UserPoolId=pool, JobId=job["JobId"])["UserImportJob"]
            if described["Status"] not in ("Pending", "InProgress"):
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        run = (described["CompletionDate"] - described["StartDate"]).total_seconds()
        result = {"users": users, "status": described["Status"], "imported": described["ImportedUsers"],
                  "job_seconds": round(run, 3), "users_per_second": round(users / run),
                  "wall_seconds": round(wall, 3), "wall_users_per_second": round(users / wall),
                  "csv_megabytes": round(len(body) / 1e6, 1)}
    print(f"localcognito: {result['users']} users {result['status']} in {result['job_seconds']} s "
          f"-> {result['users_per_second']} users/s (wall {result['wall_users_per_second']} users/s)")
    return result


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

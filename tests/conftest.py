"""Suite-wide safety: no test can reach real AWS, whatever the developer's environment holds."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "COGNITO_USER_POOL_ID",
              "COGNITO_LOGS_ROLE_ARN", "COGNITO_ENDPOINT_URL", "LEGACY_DB_URL"):
    os.environ.pop(_name, None)
os.environ.update({
    "COGNITO_TARGET": "local",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
})

# Account locks live in one directory per OS user (pipeline.ledger.lock_dir): the suite takes its own,
# so that it neither waits for nor blocks a developer's `make migrate` against the same endpoint.
_LOCKS = tempfile.mkdtemp(prefix="cm-test-locks-")
os.environ["MIGRATE_LOCK_DIR"] = _LOCKS
atexit.register(shutil.rmtree, _LOCKS, ignore_errors=True)

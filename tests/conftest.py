"""Suite-wide safety: no test can reach real AWS, whatever the developer's environment holds."""

from __future__ import annotations

import os

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

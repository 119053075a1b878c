"""The local Cognito import service: moto plus the six user-import operations, on one HTTP endpoint.

moto serves Cognito user pools, S3 and CloudWatch Logs, but none of GetCSVHeader, CreateUserImportJob,
StartUserImportJob, DescribeUserImportJob, ListUserImportJobs, StopUserImportJob. This package puts a
small WSGI middleware (``app.LocalCognitoApp``) in front of moto's own server app. It answers the six
operations (selected by ``X-Amz-Target``), the PUT to the pre-signed upload URL, and its control
endpoints (``/_localcognito/health|config|reset-faults``); every other request goes to moto unchanged.
So boto3 and the AWS CLI reach everything through one ``--endpoint-url``, and nothing in moto is
patched. Imported users are ``CognitoIdpUser`` objects placed in moto's backend, so moto's ListUsers
and AdminGetUser return them; job logs go to moto's CloudWatch Logs.

Modules: ``server`` (LocalCognito, serve), ``app`` (middleware, Service), ``operations`` (the six
operations), ``jobs`` (job record, state machine, store), ``upload`` (pre-signed URL), ``processing``
(the import worker), ``rules`` (per-row rules), ``users`` (uniqueness index, user creation),
``joblog`` (CloudWatch Logs), ``header`` (GetCSVHeader), ``config`` (settings and fault switches).
The rules follow /work/shared/cognito/import-rules.md (fact numbers in comments); the decisions for its
open points are in docs/local-cognito.md.

    from pipeline.localcognito import LocalCognito, ServiceConfig
    with LocalCognito(port=0, config=ServiceConfig(url_ttl_seconds=900)) as svc:
        svc.endpoint_url; svc.configure(throttle_rate=0.5, throttle_operations={"DescribeUserImportJob"})
"""

from pipeline.localcognito.config import ServiceConfig
from pipeline.localcognito.server import LocalCognito, serve

__all__ = ["LocalCognito", "ServiceConfig", "serve"]

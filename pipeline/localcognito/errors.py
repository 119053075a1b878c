"""Cognito's JSON error responses (fact 43): ``{"__type": code, "message": ...}``, 400 except 500."""

from __future__ import annotations

import json


class ServiceError(Exception):
    code = "InternalErrorException"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> bytes:
        return json.dumps({"__type": self.code, "message": self.message}).encode()


def _error(code: str, status: int = 400) -> type[ServiceError]:
    return type(code, (ServiceError,), {"code": code, "status": status})


InvalidParameter = _error("InvalidParameterException")
ResourceNotFound = _error("ResourceNotFoundException")
PreconditionNotMet = _error("PreconditionNotMetException")
LimitExceeded = _error("LimitExceededException")
TooManyRequests = _error("TooManyRequestsException")
InternalError = _error("InternalErrorException", 500)
SerializationError = _error("SerializationException")   # a body that is not the operation's JSON

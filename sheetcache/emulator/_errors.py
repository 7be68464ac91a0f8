"""Google-shaped API errors.

Every failure the emulator reports is an :class:`ApiError`, rendered with the JSON body Google
sends for it. Two body shapes exist because the two APIs differ:

* Sheets v4: ``{"error": {"code", "message", "status", "details"?}}``.
* Drive v3: the same plus the legacy ``errors: [{"domain", "reason", "message", ...}]`` list.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "bad_request",
    "drive_error",
    "drive_file_not_found",
    "invalid_field",
    "not_found",
    "permission_denied",
    "server_error",
    "unauthenticated",
    "unknown_field",
]

# HTTP status -> canonical google.rpc status name, as Sheets reports it.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# What Google says for a server-side failure of each kind.
_DEFAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    502: "Bad Gateway",
    503: "The service is currently unavailable.",
    504: "The request timed out. Please try again.",
}


class ApiError(Exception):
    """An error answer: an HTTP status and the JSON body Google sends with it."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """The JSON document Google sends with this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors is not None:
            error["errors"] = self.errors
        error["status"] = self.status
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str) -> ApiError:
    """A plain 400 INVALID_ARGUMENT."""
    return ApiError(400, message)


def invalid_field(field: str, proto: str, value: Any) -> ApiError:
    """The 400 Google's JSON decoder sends when a field has the wrong JSON type."""
    shown = _proto_text(value)
    message = f"Invalid value at '{field}' ({proto}), {shown}"
    return ApiError(
        400,
        message,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": message}],
            }
        ],
    )


def unknown_field(name: str, where: str) -> ApiError:
    """The 400 for a JSON key the API does not define."""
    message = (
        f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
    )
    return ApiError(
        400,
        message,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": where, "description": message}],
            }
        ],
    )


def not_found() -> ApiError:
    """Sheets' 404 for an unknown spreadsheet id."""
    return ApiError(404, "Requested entity was not found.")


def permission_denied() -> ApiError:
    """Sheets' 403 for a spreadsheet that is not shared with the caller."""
    return ApiError(403, "The caller does not have permission")


def unauthenticated() -> ApiError:
    """The 401 for a request without an access token."""
    return ApiError(
        401,
        "Request is missing required authentication credential. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential. "
        "See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    )


def server_error(code: int) -> ApiError:
    """An injected server-side failure with Google's wording for that status."""
    return ApiError(code, _DEFAULT_MESSAGES.get(code, "Internal error encountered."))


def drive_error(code: int, reason: str, message: str, **extra: str) -> ApiError:
    """A Drive v3 error, which still carries the legacy ``errors`` list."""
    item: dict[str, Any] = {"message": message, "domain": "global", "reason": reason}
    item.update(extra)
    return ApiError(code, message, errors=[item])


def drive_file_not_found(file_id: str) -> ApiError:
    """Drive's 404 for an unknown (or invisible) file id."""
    return drive_error(
        404,
        "notFound",
        f"File not found: {file_id}.",
        locationType="parameter",
        location="fileId",
    )


def _proto_text(value: Any) -> str:
    # Google echoes the offending JSON value: strings quoted, the rest as written.
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)

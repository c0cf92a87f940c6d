"""phlite's one error vocabulary. Imports nothing from phlite and no framework.

Domain code raises these; only phlite.web turns them into HTTP responses. The body
is always exactly {"type", "code", "detail", "attr"}: clients (posthog-python reads
`detail`) depend on these four keys, so never remove one.
"""


class PhliteError(Exception):
    status = 500
    type = "server_error"
    code = "error"

    def __init__(self, detail, *, code=None, attr=None, status=None, type=None, headers=None):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.attr = attr
        self.headers = headers or {}

    def body(self):
        return error_body(self.type, self.code, self.detail, self.attr)


def error_body(type, code, detail, attr=None):
    return {"type": type, "code": code, "detail": detail, "attr": attr}


class BadRequest(PhliteError):
    status = 400
    type = "validation_error"
    code = "invalid_input"


class Unauthorized(PhliteError):
    status = 401
    type = "authentication_error"
    code = "not_authenticated"


class Forbidden(PhliteError):
    status = 403
    type = "authentication_error"
    code = "permission_denied"


class NotFound(PhliteError):
    status = 404
    type = "invalid_request"
    code = "not_found"


class PayloadTooLarge(PhliteError):
    status = 413
    type = "validation_error"
    code = "payload_too_large"


class TooManyRequests(PhliteError):
    status = 429
    type = "throttled"
    code = "rate_limit_exceeded"

    def __init__(self, detail="Rate limit exceeded", retry_after=1, **kw):
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **kw)


class Unavailable(PhliteError):
    """The store cannot take more right now (queue full, disk full). Clients retry."""

    status = 503
    type = "server_error"
    code = "service_unavailable"

    def __init__(self, detail, retry_after=1, **kw):
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **kw)


# The exact answers of phlite's contract table (docs/protocol.md "The capture contract").
def invalid_project_key():
    return Unauthorized(
        "Project API key invalid. You can find your project API key in PostHog project settings.",
        code="invalid_api_key",
    )


def invalid_personal_key():
    return Unauthorized("Invalid Personal API key.", code="invalid_personal_api_key")


def invalid_project():
    return BadRequest("Invalid Project ID.", code="invalid_project", attr="project_id")


class StartupError(Exception):
    """phlite cannot start as configured (port in use, data dir unusable or from a newer phlite, bad
    setting). The CLI prints it as one line on stderr and exits 2, never a traceback."""

"""A small typed error hierarchy.

Retries key on the class (Transient vs Permanent), never on message text. Web fronts map
``code``/``status`` onto the JSON error envelope.
"""
from __future__ import annotations


class StrongroomError(Exception):
    """Base class of every error Strongroom raises on purpose."""

    code = "error"
    status = 500

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class TransientError(StrongroomError):
    """A failure that may succeed if retried later (network, 5xx, 429, lock busy)."""

    code = "transient"
    status = 503


class PermanentError(StrongroomError):
    """A failure that will not go away by retrying."""

    code = "permanent"
    status = 500


# --- request-level errors (mapped to HTTP statuses by the fronts) ---

class InvalidInput(PermanentError):
    """The request or payload is malformed."""

    code = "invalid_request"
    status = 400


class AuthError(PermanentError):
    """Authentication failed."""

    code = "unauthorized"
    status = 401


class Forbidden(PermanentError):
    """Authenticated, but not allowed."""

    code = "forbidden"
    status = 403


class NotFound(PermanentError):
    """No such object (or not visible to this tenant)."""

    code = "not_found"
    status = 404


class Conflict(PermanentError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409


class PayloadTooLarge(PermanentError):
    """The request body is larger than allowed."""

    code = "payload_too_large"
    status = 413


class Unprocessable(PermanentError):
    """The request is well-formed but cannot be processed."""

    code = "unprocessable"
    status = 422


# --- host (Bitbucket) and git errors ---

class RateLimited(TransientError):
    """The host answered 429."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HostUnavailable(TransientError):
    """The host could not be reached or answered 5xx."""

    code = "host_unavailable"
    status = 502


class LockBusy(TransientError):
    """Another writer holds the repository lock."""

    code = "lock_busy"
    status = 409


class CredentialRejected(PermanentError):
    """The host refused our credentials (revoked, expired, uninstalled)."""

    code = "credential_rejected"
    status = 401


class RepositoryGone(PermanentError):
    """The repository no longer exists on the host (or is no longer visible)."""

    code = "repository_gone"
    status = 404


class GitError(StrongroomError):
    """A git command failed."""

    code = "git_error"

    def __init__(self, message: str = "", *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class GitTransientError(GitError, TransientError):
    """A git command failed for a reason that may pass (network, lock contention)."""

    code = "git_transient"


class GitPermanentError(GitError, PermanentError):
    """A git command failed for a reason that will not pass by retrying."""

    code = "git_permanent"

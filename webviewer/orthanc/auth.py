"""Credentials for an Orthanc server: HTTP basic (user, password) or a bearer token. Kept server-side only."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp


@dataclass(frozen=True)
class OrthancAuth:
    """Basic auth or a bearer token; ``repr`` never shows the secret."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.token and self.user:
            raise ValueError("give either a user/password or a token, not both")
        if self.password is not None and not self.user:
            raise ValueError("a password needs a user")

    @classmethod
    def from_headers(cls, auth: tuple[str, str] | None, headers: dict[str, str] | None) -> OrthancAuth:
        """From a load's ``auth`` (user, password) or its ``Authorization`` header (Bearer or Basic)."""
        if auth is not None:
            return cls(user=auth[0], password=auth[1])
        value = {k.lower(): v for k, v in (headers or {}).items()}.get("authorization", "").strip()
        scheme, _, cred = value.partition(" ")
        if scheme.lower() == "bearer" and cred.strip():
            return cls(token=cred.strip())
        if scheme.lower() == "basic" and cred.strip():
            try:
                basic = aiohttp.BasicAuth.decode(value)
            except ValueError:
                return cls()
            return cls(user=basic.login, password=basic.password)
        return cls()

    @property
    def enabled(self) -> bool:
        return bool(self.user or self.token)

    def headers(self) -> dict[str, str]:
        """The Authorization header (empty when no credentials)."""
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.user:
            return {"Authorization": aiohttp.encode_basic_auth(self.user, self.password or "")}
        return {}


def credentials_hint(auth: OrthancAuth | None) -> str:
    """The sentence an HTTP 401/403 message ends with."""
    if auth is None or not auth.enabled:
        return "The server needs credentials: give a user and password (--user/--password) or a token."
    what = "token" if auth.token else f"user {auth.user!r} and its password"
    return f"Check the {what}: the server refused them."

"""API tokens: scopes, the hashed token lines (`name:scopes:hash`), verification and the bind policy.

A token is 32 random bytes (`secrets.token_urlsafe`), so its hash is a salted SHA-256, not a slow KDF: a slow
KDF protects guessable secrets such as passwords, and 256 random bits cannot be guessed however fast the
hash. A fast hash also lets every request be checked against every token in microseconds; scrypt would cost
tens of milliseconds per token per request. Only hashes are ever stored or held in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import Settings

ALGORITHM = "sha256"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class Scope(IntEnum):
    """What a token may do; each scope implies the ones below it (admin > write > read)."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The scope's name in token lines and in WWW-Authenticate."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Scope:
        """The scope named `text` (read, write or admin)."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown scope {text!r}: use read, write or admin") from None


@dataclass(frozen=True, slots=True)
class TokenHash:
    """One configured token: its name (for audit lines), its scopes, and the salted hash of its secret."""

    name: str
    scopes: frozenset[Scope]
    salt: bytes
    digest: bytes

    def allows(self, needed: Scope) -> bool:
        """Whether this token's highest scope covers `needed`."""
        return max(self.scopes) >= needed

    def line(self) -> str:
        """The `name:scopes:hash` line for the tokens file."""
        scopes = ",".join(s.label for s in sorted(self.scopes))
        return f"{self.name}:{scopes}:{ALGORITHM}${self.salt.hex()}${self.digest.hex()}"


def _digest(salt: bytes, token: str) -> bytes:
    return hashlib.sha256(salt + token.encode("utf-8")).digest()


def create_token(name: str, scopes: Iterable[Scope]) -> tuple[str, TokenHash]:
    """A new random token and its hash; the token itself is shown once and never stored."""
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"token name {name!r} is invalid: it must match {_NAME_RE.pattern}")
    chosen = frozenset(scopes)
    if not chosen:
        raise ValueError("a token needs at least one scope")
    token = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    return token, TokenHash(name, chosen, salt, _digest(salt, token))


def parse_line(line: str) -> TokenHash:
    """One `name:scopes:sha256$salt$digest` line."""
    name, scopes, hashed = (part.strip() for part in _split3(line))
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"token name {name!r} is invalid")
    algorithm, _, rest = hashed.partition("$")
    salt_hex, _, digest_hex = rest.partition("$")
    if algorithm != ALGORITHM or not salt_hex or len(digest_hex) != 64:
        raise ValueError(f"token {name!r}: the hash must be {ALGORITHM}$<salt hex>$<64 hex digits>")
    parsed = frozenset(Scope.parse(s) for s in scopes.split(",") if s.strip())
    if not parsed:
        raise ValueError(f"token {name!r} has no scope")
    return TokenHash(name, parsed, bytes.fromhex(salt_hex), bytes.fromhex(digest_hex))


def _split3(line: str) -> list[str]:
    parts = line.split(":")
    if len(parts) != 3:
        raise ValueError("a token line is name:scopes:hash")
    return parts


def parse_lines(text: str) -> tuple[TokenHash, ...]:
    """Token lines separated by newlines or `;`; blank lines and `#` comments are skipped."""
    lines = (raw.strip() for raw in re.split(r"[;\n]", text))
    tokens = tuple(parse_line(line) for line in lines if line and not line.startswith("#"))
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise ValueError("token names must be unique: audit lines name the token")
    return tokens


def load_tokens(inline: str | None, file: Path | None) -> tuple[TokenHash, ...]:
    """The configured tokens: LINSTOR_NAMES_TOKENS and the lines of LINSTOR_NAMES_TOKENS_FILE."""
    text = inline or ""
    if file is not None:
        text += "\n" + file.read_text(encoding="utf-8")
    return parse_lines(text)


def verify(tokens: Iterable[TokenHash], presented: str) -> TokenHash | None:
    """The token whose hash matches `presented`, or None; every token is compared, in constant time."""
    found: TokenHash | None = None
    for candidate in tokens:
        # no early exit: the time taken does not tell which token (or how much of one) matched
        if hmac.compare_digest(_digest(candidate.salt, presented), candidate.digest):
            found = candidate
    return found


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the service reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def unauthenticated_bind_refusal(host: str, *, has_tokens: bool, allow_unauthenticated: bool) -> str | None:
    """Why serving on `host` is refused (no tokens, not loopback, no opt-in), or None when it may go on."""
    if has_tokens or allow_unauthenticated or is_loopback(host):
        return None
    return (
        f"linstor-names: refusing to listen on {host} without tokens: anyone who reaches it could delete "
        "volumes; configure LINSTOR_NAMES_TOKENS_FILE (see `linstor-names token create`), listen on "
        "127.0.0.1, or set LINSTOR_NAMES_ALLOW_UNAUTHENTICATED=true"
    )


def configured_tokens(settings: Settings) -> tuple[TokenHash, ...]:
    """The tokens of LINSTOR_NAMES_TOKENS and LINSTOR_NAMES_TOKENS_FILE (ValueError, OSError if unusable)."""
    return load_tokens(settings.tokens, settings.tokens_file)

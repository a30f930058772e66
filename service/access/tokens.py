"""API tokens and their roles: who may call which route. A token is named, holds one role, and
is known only by its SHA-256. `DTMA_AUTH_TOKEN` is the `admin` token named `DTMA_AUTH_TOKEN`;
`DTMA_TOKENS_FILE` and `dtma token add` (service/token_store.py) name the others."""

from __future__ import annotations

import hashlib
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from service import settings as service_settings

# Each role may do all that the roles before it may.
ROLES = ("metrics", "reader", "operator", "admin")
# Bound to one agentId, for the MCP gateway only: no route of this release accepts it.
AGENT = "agent"
ALL_ROLES = (*ROLES, AGENT)
MIN_LENGTH = 32
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
ENV_NAME = "DTMA_AUTH_TOKEN"  # upper case: no stored or listed token can take its name
HASHED = "sha256:"


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: str
    sha256: str  # hex digest of the token
    agent_id: str | None = None

    @property
    def actor(self) -> str:
        """How the events its commands append name their actor."""
        return "token:" + self.name


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def allows(held: str, needed: str) -> bool:
    """Whether a token of role `held` may call a route that needs `needed`."""
    if AGENT in (held, needed):
        return held == needed
    return ROLES.index(held) >= ROLES.index(needed)


def new_token() -> str:
    """A fresh token: 256 random bits, 48 characters."""
    return "dtma_" + secrets.token_urlsafe(32)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise service_settings.SettingsError(
            f"a token name is 1 to 63 of a-z 0-9 _ . - (a letter or digit first), got {name!r}"
        )
    return name


def check_role(role: str, agent_id: str | None) -> str:
    if role not in ALL_ROLES:
        raise service_settings.SettingsError(
            f"a role is one of {', '.join(ALL_ROLES)}, got {role!r}"
        )
    if (role == AGENT) != (agent_id is not None):
        raise service_settings.SettingsError(
            "an agent token, and only an agent token, names an agent id"
        )
    return role


def check_length(token: str, where: str) -> str:
    if len(token) < MIN_LENGTH:
        raise service_settings.SettingsError(
            f"{where}: a token must be at least {MIN_LENGTH} characters, got {len(token)}"
        )
    return token


def configured(settings: service_settings.Settings) -> list[Token]:
    """The tokens the settings give: DTMA_AUTH_TOKEN (admin) and DTMA_TOKENS_FILE's lines."""
    found = []
    if settings.auth_token:
        found.append(Token(ENV_NAME, "admin", digest(check_length(settings.auth_token, ENV_NAME))))
    if settings.tokens_file:
        found.extend(read_file(Path(settings.tokens_file)))
    names = [t.name for t in found]
    if len(set(names)) != len(names):
        raise service_settings.SettingsError("DTMA_TOKENS_FILE names a token twice")
    return found


def read_file(path: Path) -> list[Token]:
    """`NAME ROLE TOKEN [AGENT_ID]` lines (TOKEN may be `sha256:<hex>`); # comments. Refused if
    anyone but its owner may read it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise service_settings.SettingsError(
            f"DTMA_TOKENS_FILE: cannot read {path}: {exc.strerror}"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise service_settings.SettingsError(
            f"DTMA_TOKENS_FILE: {path} is open to its group or others "
            f"(mode {stat.S_IMODE(mode):04o}); chmod 0600 it"
        )
    lines = (line.split("#", 1)[0].split() for line in text.splitlines())
    return [_parse_line(words, number) for number, words in enumerate(lines, 1) if words]


def _parse_line(words: list[str], number: int) -> Token:
    where = f"DTMA_TOKENS_FILE line {number}"
    if len(words) not in (3, 4):
        raise service_settings.SettingsError(f"{where}: expected NAME ROLE TOKEN [AGENT_ID]")
    name, role, token = words[:3]
    agent_id = words[3] if len(words) == 4 else None
    check_name(name)
    check_role(role, agent_id)
    if token.startswith(HASHED):
        hashed = token.removeprefix(HASHED).lower()
        if not re.fullmatch(r"[0-9a-f]{64}", hashed):
            raise service_settings.SettingsError(f"{where}: sha256: needs 64 hex digits")
        return Token(name, role, hashed, agent_id)
    return Token(name, role, digest(check_length(token, where)), agent_id)

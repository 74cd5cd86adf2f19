"""Passwords: how they are hashed and which are accepted.

Hashed with argon2id (argon2-cffi). ``KEYSHOP_PASSWORD_HASHING=recommended`` (the
default) uses the library's own recommended parameters (RFC 9106 low-memory profile:
64 MiB, 3 passes, 4 lanes); ``fast`` (1 MiB, 1 pass) exists only to keep test runs
quick and is refused when ``KEYSHOP_ENV=production``. A hash made with other
parameters is replaced at the next successful sign-in. Policy: 12 to 256 characters,
not the e-mail address (or its local part), and not easy to guess: zxcvbn's estimate
(its own lists of common passwords, words and names, checked offline, with the
e-mail address as a hint) must reach 3 of 4. Passwords are never stored,
logged or put in an error.
"""

from __future__ import annotations

import functools
import re
import secrets
from typing import Final

from argon2 import PasswordHasher, Type, profiles
from argon2.profiles import Parameters

from core.config import get_settings
from core.errors import InvalidInput

PASSWORD_MIN: Final = 12
PASSWORD_MIN_SCORE: Final = 3  # zxcvbn's 0..4: 3 is "safely unguessable" online
PASSWORD_MAX: Final = 256

#: argon2id parameter sets by ``KEYSHOP_PASSWORD_HASHING``.
HASH_PARAMETERS: Final[dict[str, Parameters]] = {
    "recommended": profiles.RFC_9106_LOW_MEMORY,  # argon2-cffi's own default
    "fast": Parameters(
        type=Type.ID,
        version=19,
        salt_len=16,
        hash_len=32,
        time_cost=1,
        memory_cost=1024,
        parallelism=1,
    ),
}


@functools.cache
def _hasher_for(profile: str) -> PasswordHasher:
    return PasswordHasher.from_parameters(HASH_PARAMETERS[profile])


def password_hasher() -> PasswordHasher:
    """The hasher for ``KEYSHOP_PASSWORD_HASHING``."""
    return _hasher_for(get_settings().password_hashing)


@functools.cache
def _dummy_hash(profile: str) -> str:
    return _hasher_for(profile).hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return password_hasher().hash(password)


def check_password_policy(password: object, email: str) -> str:
    """``password`` if acceptable for the account ``email``; InvalidInput (field
    ``password``) otherwise. The message never repeats the password."""
    if not isinstance(password, str) or not password:
        raise InvalidInput("choose a password", field="password")
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(
            f"the password must have at least {PASSWORD_MIN} characters", field="password"
        )
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(
            f"the password may have at most {PASSWORD_MAX} characters", field="password"
        )
    folded = password.strip().casefold()
    local = email.split("@", 1)[0]
    if folded in (email.casefold(), local.casefold()):
        raise InvalidInput("the password must not be your e-mail address", field="password")
    if _guessable(password, [email, local, *re.split(r"[._+-]", local)]):
        raise InvalidInput(
            "the password is too easy to guess (a common password, a pattern or your "
            "name); use a few unrelated words or more varied characters",
            field="password",
        )
    return password


def _guessable(password: str, user_inputs: list[str]) -> bool:
    """zxcvbn's estimate, offline: its lists (common passwords, words, names) ship in the
    package. The first 72 characters are scored (longer ones are not the weak ones)."""
    from zxcvbn import zxcvbn

    result = zxcvbn(password[:72], user_inputs=[u for u in user_inputs if u], max_length=72)
    return int(result["score"]) < PASSWORD_MIN_SCORE

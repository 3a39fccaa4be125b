"""Encryption of the stored OAuth tokens (Fernet: AES-128-CBC + HMAC-SHA256, from `cryptography`).

A stolen database file or backup must not hand out the creator's refresh token, which opens the whole campaign.
Keys come from `TOKEN_ENCRYPTION_KEY` or from a key file beside the database; either may hold several keys: the
first encrypts, every one decrypts, which is what lets `python -m bot rotate-key` move to a new key without a
moment where some token can't be read.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

#: Marks an encrypted value; a value without it is a plain-text row from before encryption.
PREFIX = "fernet:"
KEY_FILE_SUFFIX = ".key"


class TokenKeyError(Exception):
    """The key can't be used or doesn't open the stored tokens; the message is one line naming where it came from."""


def new_key() -> str:
    return Fernet.generate_key().decode()


def parse_keys(text: str) -> list[bytes]:
    """Comma- or line-separated Fernet keys; ValueError (naming no key material) when one is malformed."""
    keys = [part.strip().encode() for part in text.replace("\n", ",").split(",") if part.strip()]
    if not keys:
        raise ValueError("holds no key")
    for number, key in enumerate(keys, start=1):
        try:
            valid = len(base64.urlsafe_b64decode(key)) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise ValueError(f"key {number} is not a Fernet key (44 characters of url-safe base64)")
    return keys


def key_file_beside(database_path: Path) -> Path:
    return database_path.with_name(database_path.name + KEY_FILE_SUFFIX)


class TokenCipher:
    """Seals a token to the row and column it belongs to, so a ciphertext copied to another row won't open."""

    def __init__(self, keys: Sequence[bytes], source: str) -> None:
        self.keys = tuple(keys)
        #: Where the keys came from, for error lines: "TOKEN_ENCRYPTION_KEY" or "key file <path>".
        self.source = source
        self._fernet = MultiFernet([Fernet(key) for key in self.keys])

    @classmethod
    def from_setting(cls, value: str) -> TokenCipher:
        try:
            return cls(parse_keys(value), "TOKEN_ENCRYPTION_KEY")
        except ValueError as error:
            raise TokenKeyError(f"TOKEN_ENCRYPTION_KEY {error}") from None

    @classmethod
    def from_key_file(cls, path: Path) -> TokenCipher:
        try:
            text = path.read_text()
        except OSError as error:
            raise TokenKeyError(f"key file {path}: can't be read ({error.strerror})") from None
        try:
            return cls(parse_keys(text), f"key file {path}")
        except ValueError as error:
            raise TokenKeyError(f"key file {path} {error}") from None

    def seal(self, label: str, token: str) -> str:
        return PREFIX + self._fernet.encrypt(f"{label}\n{token}".encode()).decode()

    def open(self, label: str, stored: str) -> str:
        """The token; TokenKeyError when no key opens it or it belongs to another row."""
        if not stored.startswith(PREFIX):
            raise TokenKeyError(f"a stored token for {label} is not encrypted")
        try:
            text = self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise TokenKeyError(f"{self.source} does not decrypt the stored tokens (wrong key?)") from None
        found_label, _, token = text.partition("\n")
        if found_label != label:
            raise TokenKeyError(f"a stored token for {label} was sealed for another row")
        return token


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def write_key_file(path: Path, keys: Sequence[bytes]) -> None:
    """Replace the key file atomically, 0600: a crash leaves either the old file or the new one, never half."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, b"".join(key + b"\n" for key in keys))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def create_key_file(path: Path) -> TokenCipher:
    """A new key file on first start; never replaces one that exists (another process may have just made it)."""
    key = new_key().encode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, key + b"\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
    return TokenCipher.from_key_file(path)

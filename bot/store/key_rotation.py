"""`python -m bot rotate-key`: re-seal every stored token under a new key, never leaving a token no key opens.

With a key file the new key is made here: the file holds new and old keys while the rows are re-sealed (one
commit), then the new key alone. With TOKEN_ENCRYPTION_KEY the operator puts the new key in front of the old one,
runs this, and then keeps only the new key; the bot itself never writes the environment.
"""

from __future__ import annotations

from pathlib import Path

from bot.store.facade import Store
from bot.store.files import exclusive_use
from bot.store.opening import open_postgres
from bot.store.token_cipher import TokenCipher, TokenKeyError, key_file_beside, new_key, write_key_file


async def rotate_token_key(database_path: Path, setting: str, database_url: str = "") -> str:
    """Returns the sentence to show the operator; raises TokenKeyError or StoreUnusable (one line each). With
    DATABASE_URL (PostgreSQL) the key is always the setting's; stop every bot process first."""
    if database_url:
        return await _rotate_setting(database_path, TokenCipher.from_setting(setting), database_url)
    with exclusive_use(database_path):
        if setting:
            return await _rotate_setting(database_path, TokenCipher.from_setting(setting))
        return await _rotate_key_file(database_path)


async def _rotate_setting(database_path: Path, cipher: TokenCipher, database_url: str = "") -> str:
    if len(cipher.keys) < 2:
        raise TokenKeyError(
            "TOKEN_ENCRYPTION_KEY holds one key: set it to <new key>,<current key> (python -m bot new-key makes one),"
            " run rotate-key again, then set it to the new key alone"
        )
    store = await (open_postgres(database_url, cipher) if database_url else Store.open(database_path, cipher))
    try:
        count = await store.reencrypt_tokens(cipher)
    finally:
        await store.close()
    return (
        f"re-encrypted {count} token pair(s) under the first key of TOKEN_ENCRYPTION_KEY;"
        " now set TOKEN_ENCRYPTION_KEY to that key alone and start the bot"
    )


async def _rotate_key_file(database_path: Path) -> str:
    store = await Store.open(database_path)  # makes the key file if there was none (and then nothing to re-seal)
    key_file = key_file_beside(database_path)
    try:
        current = TokenCipher.from_key_file(key_file)
        fresh = new_key().encode()
        write_key_file(key_file, [fresh, *current.keys])  # from here on either key opens every row
        count = await store.reencrypt_tokens(TokenCipher([fresh, *current.keys], f"key file {key_file}"))
    finally:
        await store.close()
    write_key_file(key_file, [fresh])
    return f"re-encrypted {count} token pair(s) under a new key in {key_file}; back up that file (the old key is gone)"

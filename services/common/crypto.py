"""Secrets at rest (SMTP and SFTP passwords, provider keys): Fernet keyed from SECRET_KEY.

    from services.common import crypto
    token = crypto.encrypt("s3cret", self.config)      # config: the service's Config() (a dict)
    crypto.decrypt(token, self.config)                  # -> "s3cret", or crypto.CannotDecrypt

The key derivation is the one the contacts and messaging services used before this module, byte
for byte, so secrets they stored still decrypt: a SECRET_KEY that is itself a Fernet key (url-safe
base64 of 32 bytes) is used as is; any other string is stretched with SHA-256 into one."""
import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class CannotDecrypt(Exception):
    """The token was not made with the current SECRET_KEY (rotated) or is not a token at all."""


def secret_key(config):
    """SECRET_KEY from a service's config (a mapping), or the key itself when given a string."""
    if isinstance(config, (str, bytes)) or config is None:
        return config
    return config.get("SECRET_KEY")


def fernet(config):
    key = secret_key(config) or ""
    key = key if isinstance(key, bytes) else key.encode()
    try:
        if len(base64.urlsafe_b64decode(key)) == 32:
            return Fernet(key)
    except (ValueError, TypeError):
        pass
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key).digest()))


def encrypt(text, config):
    """The Fernet token (text) of `text`."""
    return fernet(config).encrypt(text.encode()).decode()


def decrypt(token, config):
    """The text of a token made by encrypt() with the same SECRET_KEY; CannotDecrypt otherwise."""
    try:
        return fernet(config).decrypt(token.encode() if isinstance(token, str) else token).decode()
    except (InvalidToken, AttributeError, TypeError, ValueError) as err:
        raise CannotDecrypt("the secret cannot be read with the current SECRET_KEY") from err

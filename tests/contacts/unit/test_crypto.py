"""services/common/crypto.py: secrets stored before it existed (SFTP passwords by contacts, SMTP
and provider secrets by messaging) still decrypt: the key derivation is the same, byte for byte."""
import base64
import hashlib

import pytest
from cryptography.fernet import Fernet

from services.common import crypto


def legacy_fernet(secret_key):
    """How services/contacts/sources.py and services/messaging/settings.py derived the key."""
    key = (secret_key or "").encode()
    try:
        if len(base64.urlsafe_b64decode(key)) == 32:
            return Fernet(key)
    except (ValueError, TypeError):
        pass
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key).digest()))


@pytest.mark.parametrize("secret", ["dev-secret-change-me", Fernet.generate_key().decode(), "",
                                    "short", "not base64 at all!!"])
def test_secrets_stored_with_the_old_derivation_still_decrypt_and_new_ones_read_back(secret):
    config = {"SECRET_KEY": secret}
    old = legacy_fernet(secret).encrypt("sftp pass wörd".encode()).decode()
    assert crypto.decrypt(old, config) == "sftp pass wörd"
    new = crypto.encrypt("smtp-password", config)
    assert legacy_fernet(secret).decrypt(new.encode()).decode() == "smtp-password"
    assert crypto.decrypt(new, secret) == "smtp-password"  # the key itself works too


def test_messaging_settings_derive_the_same_key():
    from services.messaging import settings
    token = settings.encrypt("dev-secret", "provider key")
    assert crypto.decrypt(token, {"SECRET_KEY": "dev-secret"}) == "provider key"


def test_a_rotated_key_cannot_decrypt_and_says_so():
    token = crypto.encrypt("hunter2", {"SECRET_KEY": "before"})
    with pytest.raises(crypto.CannotDecrypt):
        crypto.decrypt(token, {"SECRET_KEY": "after"})
    with pytest.raises(crypto.CannotDecrypt):
        crypto.decrypt(None, {"SECRET_KEY": "after"})

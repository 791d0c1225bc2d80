"""Identity rules with no broker and no database."""
import pyotp
import pytest

from services.common.errors import Conflict, Forbidden
from services.identity import accounts, credentials, mfa, organizations, team


def test_password_policy_refuses_short_common_and_self_naming_passwords():
    assert credentials.password_problems("short") == ["must be at least 8 characters"]
    assert "is too common" in credentials.password_problems("Password123")
    assert "needs more different characters" in credentials.password_problems("aaaaaaaaab")
    assert "must not be the email address" in credentials.password_problems(
        "sam@example.org", email="Sam@example.org")
    assert credentials.password_problems("correct-horse-battery", email="sam@example.org") == []


def test_passwords_are_argon2id_and_verify_only_with_the_right_password():
    h = credentials.hash_password("correct-horse-battery")
    assert h.startswith("$argon2id$") and "correct-horse" not in h
    assert credentials.verify_password(h, "correct-horse-battery")
    assert not credentials.verify_password(h, "wrong-horse-battery")
    assert not credentials.verify_password(None, "anything-at-all")  # unknown account


def test_tokens_are_random_prefixed_and_stored_as_sha256():
    a, b = credentials.new_token("tru_at_"), credentials.new_token("tru_at_")
    assert a.startswith("tru_at_") and a != b and len(a) > 40
    assert len(credentials.token_hash(a)) == 64 and credentials.token_hash(a) != a


def test_slugs_are_lowercase_ascii_with_hyphens():
    assert organizations.slugify("Café Ünïcode & Co.") == "cafe-unicode-co"
    assert organizations.slugify("!!!") == "org"
    assert organizations.SLUG_RE.match("acme-2") and not organizations.SLUG_RE.match("-acme")


@pytest.mark.parametrize("name,ok", [("Europe/Berlin", True), ("UTC", True),
                                     ("America/Argentina/Buenos_Aires", True), ("CEST", False),
                                     ("+02:00", False), ("Mars/Olympus", False), ("", False)])
def test_default_timezone_must_be_an_iana_name(name, ok):
    assert organizations.valid_timezone(name) is ok


def test_retry_after_counts_down_to_when_the_oldest_failure_leaves_the_window():
    assert accounts.retry_after(0, 900) == 900
    assert accounts.retry_after(899.5, 900) == 1
    assert accounts.retry_after(1000, 900) == 1


OWNER = {"user_id": "u-owner", "role": "owner", "locked": False}


def test_last_owner_cannot_be_demoted_locked_or_removed():
    for change in ({"new_role": "admin"}, {"lock": True}, {"remove": True}):
        with pytest.raises(Conflict):
            team.may_change("owner", "someone-else", OWNER, unlocked_owners=1, **change)
    assert team.may_change("owner", "someone-else", OWNER, new_role="admin", unlocked_owners=2) is None


def test_only_owners_grant_or_touch_ownership_and_nobody_locks_themselves():
    member = {"user_id": "u-m", "role": "member", "locked": False}
    with pytest.raises(Forbidden):
        team.may_change("admin", "u-a", OWNER, lock=True, unlocked_owners=3)
    with pytest.raises(Forbidden):
        team.may_change("admin", "u-a", member, new_role="owner")
    with pytest.raises(Conflict):
        team.may_change("admin", "u-m", member, lock=True)
    assert team.may_change("admin", "u-a", member, new_role="viewer") is None


def test_totp_codes_verify_against_the_secret_and_recovery_codes_are_hashed():
    secret = pyotp.random_base32()
    at = 1_700_000_000  # step 56666666, 20 seconds into it
    totp = pyotp.TOTP(secret)
    assert mfa.totp_step(secret, totp.at(at), at=at) == 56666666
    assert mfa.totp_step(secret, totp.at(at - 30), at=at) == 56666665  # clock drift: one step
    assert mfa.totp_step(secret, totp.at(at + 30), at=at) == 56666667
    assert mfa.totp_step(secret, totp.at(at - 60), at=at) is None
    assert mfa.totp_step(secret, "abcdef", at=at) is None and mfa.totp_step(None, "123456") is None
    plain, hashed = mfa.new_recovery_codes()
    assert len(plain) == 10 and len(set(plain)) == 10
    assert hashed == [credentials.token_hash(c) for c in plain]


def test_a_totp_step_at_or_before_the_last_accepted_one_is_refused():
    secret = pyotp.random_base32()
    at = 1_700_000_000
    code = pyotp.TOTP(secret).at(at)
    assert mfa.totp_step(secret, code, last_step=56666665, at=at) == 56666666
    assert mfa.totp_step(secret, code, last_step=56666666, at=at) is None  # the same code again
    assert mfa.totp_step(secret, pyotp.TOTP(secret).at(at - 30), last_step=56666666, at=at) is None


def test_hashes_made_with_older_parameters_are_upgraded_at_sign_in():
    from argon2 import PasswordHasher
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash("correct-horse-battery")
    assert credentials.verify_password(old, "correct-horse-battery")
    assert credentials.needs_rehash(old)
    assert not credentials.needs_rehash(credentials.hash_password("correct-horse-battery"))


def test_a_new_organization_takes_the_first_free_slug_suffix():
    from services.identity.organizations import next_slug
    assert next_slug("acme", set()) == "acme"
    assert next_slug("acme", {"acme"}) == "acme-2"
    assert next_slug("acme", {"acme", "acme-2", "acme-3", "acme-5"}) == "acme-4"

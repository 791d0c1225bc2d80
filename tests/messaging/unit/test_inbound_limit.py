"""The inbound email size limit both the gateway and messaging apply (services/common/config)."""
import pytest

from services.common.config import INBOUND_EMAIL_MAX_BYTES, inbound_email_max_bytes


@pytest.mark.parametrize("value, expected", [
    ("1048576", 1048576), (2048, 2048), (None, INBOUND_EMAIL_MAX_BYTES), ("", INBOUND_EMAIL_MAX_BYTES),
    ("lots", INBOUND_EMAIL_MAX_BYTES), ("0", INBOUND_EMAIL_MAX_BYTES), ("-5", INBOUND_EMAIL_MAX_BYTES)])
def test_the_limit_is_the_configured_positive_number_else_25_mb(value, expected):
    assert inbound_email_max_bytes({"INBOUND_EMAIL_MAX_BYTES": value}) == expected
    assert INBOUND_EMAIL_MAX_BYTES == 25 * 1024 * 1024

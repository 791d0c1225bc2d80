-- The last TOTP time step (unix time // 30) accepted for the user: a code of that step or an
-- earlier one is refused, so a code seen over someone's shoulder cannot be replayed within the
-- +-1 step window (RFC 6238 section 5.2). NULL until a code is accepted; reset with the secret.
ALTER TABLE users ADD COLUMN totp_last_step bigint;

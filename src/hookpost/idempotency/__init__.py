"""``idempotency-key`` on every POST: a repeat gets the first answer again (see middleware)."""

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from hookpost.delivery.signing import webhook_headers
from hookpost.endpoints.service import generate_secret

BODY = '{"invoice":42}'


def test_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret = generate_secret()
    headers = webhook_headers("msg_1", datetime.now(UTC), BODY, [secret])
    assert Webhook(secret).verify(BODY, headers) == {"invoice": 42}
    assert {headers[f"svix-{name}"] for name in ("id", "timestamp", "signature")} == {
        headers[f"webhook-{name}"] for name in ("id", "timestamp", "signature")
    }


def test_after_rotation_both_secrets_verify_and_a_stranger_does_not() -> None:
    new, old = generate_secret(), generate_secret()
    headers = webhook_headers("msg_1", datetime.now(UTC), BODY, [new, old])
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)

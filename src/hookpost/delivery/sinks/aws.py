"""The AWS client sqs and amazonS3 send with: aiobotocore (botocore's requests on aiohttp, so
a send never blocks the event loop), with the destination's own keys only and its endpoint's
host checked against the allowed networks at every connect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError

from hookpost.delivery.network import literal_address, refuse_unless_allowed
from hookpost.delivery.sender import describe_failure
from hookpost.delivery.transport import GuardedResolver
from hookpost.settings import Settings


class UnsupportedCredentials(Exception):
    """roleArn without keys: Hookpost would have to assume the role with credentials of its own."""


@lru_cache(maxsize=1)
def _session() -> AioSession:
    # One session for the process: it keeps the services' models once loaded from disk.
    return get_session()


def check_literal_host(url: str, settings: Settings) -> None:
    """A host spelled as an address is checked here: aiohttp asks the resolver only for names."""
    host = urlsplit(url).hostname or ""
    address = literal_address(host)
    if address is not None:
        refuse_unless_allowed(host, str(address), settings.allowed_networks)


@asynccontextmanager
async def aws_client(
    service: Literal["sqs", "s3"], config: dict[str, Any], settings: Settings, endpoint_url: str | None
) -> AsyncIterator[Any]:
    """A client for ``service`` with the destination's keys (never the machine's own: no
    environment, profile or instance credentials are looked at)."""
    key_id, secret = config.get("access_key_id"), config.get("secret_access_key")
    if key_id is None or secret is None:
        raise UnsupportedCredentials(
            "roleArn alone is not supported yet: give accessKeyId and secretAccessKey "
            "(Hookpost assumes no role with credentials of its own)"
        )
    if endpoint_url is not None:
        check_literal_host(endpoint_url, settings)
    aio_config = AioConfig(
        connect_timeout=settings.delivery_timeout,
        read_timeout=settings.delivery_timeout,
        retries={"total_max_attempts": 1},  # Hookpost's own schedule retries the batch
        connector_args={"resolver": GuardedResolver(settings.allowed_networks)},
        s3={"addressing_style": "path"},
    )
    async with _session().create_client(
        service,
        region_name=config["region"],
        endpoint_url=endpoint_url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=aio_config,
    ) as client:
        yield client


def describe_aws_failure(exc: BaseException) -> str:
    if isinstance(exc, UnsupportedCredentials):
        return str(exc)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"AWS refused: {error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    if isinstance(exc, BotoCoreError):
        # botocore wraps the connection's own error; say what that was.
        cause = exc.__cause__ or exc.__context__
        return describe_failure(cause) if cause is not None else f"{type(exc).__name__}: {exc}"
    return describe_failure(exc)

"""URLs as they may be shown: in a response, a terminal or a log line."""

from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL we can take apart: show nothing of it that could be secret
        return "***"
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    username = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{username}:***@{hostinfo}"))


# A URL in a response: credentials in it are the receiver's, never shown back.
ShownUrl = Annotated[str, AfterValidator(redact_url)]

"""Field types shared by the request schemas."""

from typing import Annotated

from pydantic import Field, StringConstraints

# Svix's rule for uids and event type names.
Name = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9\-_.]+$", min_length=1, max_length=256)]
Uid = Name
Metadata = Annotated[dict[str, str], Field(max_length=64)]
ThrottleRate = Annotated[int, Field(ge=1, le=100_000, description="Messages per second")]

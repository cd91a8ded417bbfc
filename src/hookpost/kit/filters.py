"""Query filters shared by the list routes."""

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator, BeforeValidator

from hookpost.kit.time import as_utc, iso_only

# Stored times are UTC; a filter in another zone (or none, taken as UTC) is converted first.
_Utc = Annotated[datetime, BeforeValidator(iso_only), AfterValidator(as_utc)]

Before = Annotated[_Utc | None, Query(description="Only items created before this time (ISO 8601)")]
After = Annotated[_Utc | None, Query(description="Only items created after this time (ISO 8601)")]

"""Query filters shared by the list routes."""

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator

from hookpost.kit.time import as_utc

# Stored times are UTC; a filter in another zone (or none, taken as UTC) is converted first.
_Utc = Annotated[datetime, AfterValidator(as_utc)]

Before = Annotated[_Utc | None, Query(description="Only items created before this time")]
After = Annotated[_Utc | None, Query(description="Only items created after this time")]

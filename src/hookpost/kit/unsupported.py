"""Inputs the Svix API defines that Hookpost does not implement: refused, never silently dropped.

A body field typed ``NotSupported`` fails validation (422) when a client sends a value for it.
"""

from typing import Annotated, Any

from pydantic import AfterValidator, Field

NOT_SUPPORTED = "not supported by Hookpost"


def _refuse(value: Any) -> Any:
    if value is not None:
        raise ValueError(NOT_SUPPORTED)
    return value


NotSupported = Annotated[Any, AfterValidator(_refuse), Field(default=None, description=NOT_SUPPORTED)]

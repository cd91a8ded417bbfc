"""What an application-scoped token may do: Svix's app portal capabilities, and the one table from
each capability to the API operations it allows (``auth.policy`` decides the API's requests and the
app portal's pages and actions with it, and the portal hides what it refuses).

An operation is a method and a route under ``/api/v1``, as the OpenAPI document names it. One no
capability names is the admin's alone: sending messages, deleting their content, changing the
application, and every route added later until it is named here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

Operation = tuple[str, str]


class Capability(StrEnum):
    VIEW_BASE = "ViewBase"
    VIEW_ENDPOINT_SECRET = "ViewEndpointSecret"  # noqa: S105
    MANAGE_ENDPOINT_SECRET = "ManageEndpointSecret"  # noqa: S105
    MANAGE_ENDPOINT = "ManageEndpoint"
    CREATE_ATTEMPTS = "CreateAttempts"


# Svix's, which Hookpost has nothing for: refused by name rather than ignored.
UNSUPPORTED = {"ManageTransformations": "Hookpost has no transformations"}

ALL = frozenset(Capability)  # a token minted without capabilities nor readOnly, as Svix's default
READ_ONLY = frozenset({Capability.VIEW_BASE})  # readOnly: true

APP = "/app/{app_id}"
ENDPOINT = APP + "/endpoint/{endpoint_id}"
MESSAGE = APP + "/msg/{msg_id}"
_SECRET = ("GET", ENDPOINT + "/secret")
_ROTATE = ("POST", ENDPOINT + "/secret/rotate")
DESTINATION = APP + "/destination/{destination_id}"
POLLER = APP + "/poller/{sink_id}"
_DESTINATION_ROTATE = ("POST", DESTINATION + "/secret/rotate")

ALLOWS: Mapping[Capability, frozenset[Operation]] = {
    # Everything of the application a customer reads, but an endpoint's secret; the catalogue; logging out.
    Capability.VIEW_BASE: frozenset(
        [
            ("POST", "/auth/logout"),
            ("GET", "/event-type"),
            ("GET", "/event-type/{event_type_name}"),
            *(
                ("GET", route)
                for route in (
                    APP,
                    APP + "/endpoint",
                    ENDPOINT,
                    ENDPOINT + "/headers",  # sensitive values withheld, as from everyone
                    ENDPOINT + "/stats",
                    ENDPOINT + "/msg",
                    APP + "/msg",
                    MESSAGE,
                    MESSAGE + "/endpoint",
                    MESSAGE + "/attempt/{attempt_id}",
                    APP + "/attempt/msg/{msg_id}",
                    APP + "/attempt/endpoint/{endpoint_id}",
                    APP + "/destination",
                    DESTINATION,  # its secrets and credentials never in an answer
                    DESTINATION + "/attempt",
                    POLLER,
                    POLLER + "/consumer/{consumer_id}",
                )
            ),
            # A named consumer's position is its own reading state, moved by every consumer poll too.
            ("POST", POLLER + "/consumer/{consumer_id}/seek"),
        ]
    ),
    Capability.VIEW_ENDPOINT_SECRET: frozenset([_SECRET]),
    Capability.MANAGE_ENDPOINT_SECRET: frozenset([_SECRET, _ROTATE, _DESTINATION_ROTATE]),
    # Every field of an endpoint, its secret included.
    Capability.MANAGE_ENDPOINT: frozenset(
        [
            ("POST", APP + "/endpoint"),
            ("PUT", ENDPOINT),
            ("PATCH", ENDPOINT),
            ("DELETE", ENDPOINT),
            ("PUT", ENDPOINT + "/headers"),
            ("PATCH", ENDPOINT + "/headers"),
            _SECRET,
            _ROTATE,
            # Destinations are endpoints of other kinds.
            ("POST", APP + "/destination"),
            ("PUT", DESTINATION),
            ("PATCH", DESTINATION),
            ("DELETE", DESTINATION),
            _DESTINATION_ROTATE,
        ]
    ),
    # New attempts of messages the operator sent, to this application's own endpoints: never a new
    # event of the token's making (send-example's payload is the event type's example).
    Capability.CREATE_ATTEMPTS: frozenset(
        [
            ("POST", ENDPOINT + "/send-example"),
            ("POST", MESSAGE + "/endpoint/{endpoint_id}/resend"),
            ("POST", ENDPOINT + "/recover"),
            ("POST", ENDPOINT + "/replay-missing"),
            ("POST", ENDPOINT + "/bulk-replay"),
        ]
    ),
}


def granted(capabilities: Iterable[str] | None, read_only: bool) -> frozenset[Capability]:
    """What a token minted with these gets: Svix's rules (``ViewBase`` always; none named, all of
    them; ``readOnly``, ``ViewBase`` alone). Names are checked by ``auth.schemas``."""
    if read_only:
        return READ_ONLY
    if capabilities is None:
        return ALL
    return frozenset(Capability(name) for name in capabilities) | READ_ONLY


def allows(capabilities: Iterable[Capability], operation: Operation) -> bool:
    return any(operation in ALLOWS[capability] for capability in capabilities)


def needed_for(operation: Operation) -> list[Capability]:
    """The capabilities any one of which allows the operation; none: it is the admin's."""
    return [capability for capability in Capability if operation in ALLOWS[capability]]


def stored(capabilities: frozenset[Capability]) -> list[str]:
    """As the token's row keeps them: sorted names."""
    return sorted(capabilities)


def loaded(names: Iterable[str]) -> frozenset[Capability]:
    """A row's names back; one this version does not know grants nothing."""
    known = {capability.value for capability in Capability}
    return frozenset(Capability(name) for name in names if name in known)

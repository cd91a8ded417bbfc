import enum

from hookpost.endpoints.schemas import EndpointOut
from hookpost.kit.schemas import Schema, UtcDatetime
from hookpost.kit.urls import ShownUrl
from hookpost.messages.schemas import MessageOut
from hookpost.storage.models import Delivery, Endpoint, MessageStatus, TriggerType


class MessageStatusText(enum.StrEnum):
    SUCCESS = "success"
    PENDING = "pending"
    FAIL = "fail"
    SENDING = "sending"
    CANCELED = "canceled"


class StatusCodeClass(enum.IntEnum):
    """A receiver's HTTP status, by hundreds; 0: no response at all."""

    NONE = 0
    INFORMATIONAL = 100
    SUCCESS = 200
    REDIRECT = 300
    CLIENT_ERROR = 400
    SERVER_ERROR = 500


def status_text(status: int) -> MessageStatusText:
    return MessageStatusText[MessageStatus(status).name]


class MessageAttemptOut(Schema):
    id: str
    msg_id: str
    endpoint_id: str
    url: ShownUrl
    response: str
    response_status_code: int
    response_duration_ms: int
    status: MessageStatus
    status_text: MessageStatusText
    trigger_type: TriggerType
    timestamp: UtcDatetime
    error: str | None = None
    msg: MessageOut | None = None


class MessageEndpointOut(EndpointOut):
    """An endpoint, with how delivering one message to it stands."""

    status: MessageStatus
    status_text: MessageStatusText
    next_attempt: UtcDatetime | None


def message_endpoint_out(endpoint: Endpoint, delivery: Delivery) -> MessageEndpointOut:
    return MessageEndpointOut(
        **EndpointOut.model_validate(endpoint).model_dump(),
        status=MessageStatus(delivery.status),
        status_text=status_text(delivery.status),
        next_attempt=delivery.next_attempt_at,
    )


class EndpointMessageOut(MessageOut):
    """A message sent (or owed) to one endpoint, with how delivering it there stands."""

    status: MessageStatus
    status_text: MessageStatusText
    next_attempt: UtcDatetime | None

"""Who holds how much of a worker's room: each receiver's share and each application's.

A delivery holds a place in its receiver's share (scheme, host, port) and in its
application's share from its claim until its send is answered. A receiver or an
application whose share is (nearly) spent is left out of the next claims, so a slow or
silent receiver, or an application with a backlog, hanging endpoints or many receivers,
fills only its own share, never the room other receivers' and applications' deliveries need.
"""

from __future__ import annotations

from collections import Counter

from hookpost.delivery.claim import Claimed
from hookpost.delivery.context import origin_of


class Share:
    """Places held per key (a receiver, or an application), each key bounded by ``limit``."""

    def __init__(self, limit: int, margin: int) -> None:
        self.limit = limit
        # A key with less room than this left is full: claiming for it would cost a round
        # trip for a handful of rows.
        self._margin = max(1, min(margin, limit // 2))
        self._load: Counter[str] = Counter()
        self._members: dict[str, set[str]] = {}  # key -> endpoints seen under it while it has load

    def full(self, key: str) -> bool:
        return self.limit - self._load[key] < self._margin

    def at_limit(self, key: str) -> bool:
        return self._load[key] >= self.limit

    def take(self, key: str, endpoint_id: str) -> None:
        self._load[key] += 1
        self.note(key, endpoint_id)

    def note(self, key: str, endpoint_id: str) -> None:
        """The endpoint is under this key: left out of claims with it while it is full."""
        if key in self._load:
            self._members.setdefault(key, set()).add(endpoint_id)

    def give_back(self, key: str) -> bool:
        """Free one place; True when that made a full key claimable again."""
        was_full = self.full(key)
        self._load[key] -= 1
        if self._load[key] <= 0:
            # Forget it: the maps stay as small as the set of keys that have load.
            del self._load[key]
            self._members.pop(key, None)
        return was_full and not self.full(key)

    def room(self) -> int | None:
        """The least room among the keys in use that are not full (None when there are none)."""
        rooms = [self.limit - load for key, load in self._load.items() if not self.full(key)]
        return min(rooms) if rooms else None

    def full_keys(self) -> set[str]:
        return {key for key in self._load if self.full(key)}

    def endpoints_of_full_keys(self) -> set[str]:
        return {endpoint for key in self.full_keys() for endpoint in self._members.get(key, ())}


class Shares:
    """The receivers' and the applications' shares of one engine's room."""

    def __init__(self, receiver_limit: int, application_limit: int, margin: int) -> None:
        self.receivers = Share(receiver_limit, margin)
        self.applications = Share(application_limit, margin)

    def admit(self, claimed: Claimed) -> bool:
        """Take a place for the delivery in both shares; False (nothing taken) when either is spent."""
        origin = origin_of(claimed.url)
        if self.receivers.at_limit(origin) or self.applications.at_limit(claimed.app_id):
            self.receivers.note(origin, claimed.endpoint_id)
            return False
        self.receivers.take(origin, claimed.endpoint_id)
        self.applications.take(claimed.app_id, claimed.endpoint_id)
        return True

    def release(self, claimed: Claimed) -> bool:
        """Its send is over: free its places. True when a receiver or an application that was
        left out of claims may be claimed for again."""
        receiver_freed = self.receivers.give_back(origin_of(claimed.url))
        application_freed = self.applications.give_back(claimed.app_id)
        return receiver_freed or application_freed

    def claim_size(self, room: int) -> int:
        """The room, but no more than the least busy receiver or application in use can take:
        rows a claim took and could not keep would cost a round trip to give back."""
        for share in (self.receivers, self.applications):
            least = share.room()
            if least is not None:
                room = min(room, least)
        return room

    def saturated_endpoints(self) -> set[str]:
        return self.receivers.endpoints_of_full_keys()

    def saturated_applications(self) -> set[str]:
        return self.applications.full_keys()

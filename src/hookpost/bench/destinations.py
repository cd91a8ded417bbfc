"""Phase ``destinations``: one application's backlog, preloaded with no worker running, taken
out two ways. A FIFO destination (``batchSize`` 100) drained by one ``hookpost worker`` to the
receiver, then a consumer pulling the same messages through a polling endpoint, following the
iterator until ``done``. Each rate beside the endpoint drain's (``drain``) of this run, measured
here on a small backlog when the ``e2e`` phase did not run."""

from __future__ import annotations

import time
from typing import Any

from hookpost.bench.base import HookpostClient, per
from hookpost.bench.delivery import DeliveryPhase
from hookpost.bench.receiver import BATCH_PREFIX
from hookpost.bench.stack import HOOKPOST_APP, CpuWindow, Stack

APP_UID = "destinations"
FIFO_PATH = f"{BATCH_PREFIX}-fifo"
BATCH_SIZE = 100
POLL_LIMIT = 100  # the FIFO destination's batch size: the same messages per round trip both ways


class DestinationsPhase(DeliveryPhase):
    def destinations_phase(self) -> None:
        cfg = self.config
        phase = self.env.phase("destinations")
        stack = Stack(phase, self.env.logs)
        try:
            with self.ui.step("destinations: the API and a receiver"):
                api_url = stack.start_api(HOOKPOST_APP, cfg.workers, wait=False)
                receiver = stack.start_receiver()
                stack.wait_api("api")
            hookpost = HookpostClient(api_url, self.env.admin_token)
            if self.find("drain") is None:
                # Nothing to compare with yet (`--only destinations`): the endpoint drain, measured here.
                hookpost.application_with_endpoint("drain", receiver + "/drain")
                drain = self._drain(
                    "drain", None, cfg.drain_backlog, hookpost.message_request("drain"), receiver, stack
                )
                drain["config"]["measured_by"] = "the destinations phase (the e2e phase did not run)"
                self.add(drain)
                hookpost.disable_endpoint("drain")
            hookpost.application(APP_UID)
            # A destination receives the messages accepted from its creation on: both exist first.
            hookpost.add_destination(
                APP_UID,
                {
                    "type": "fifoEndpoint",
                    "uid": "fifo",
                    "batchSize": BATCH_SIZE,
                    "config": {"url": receiver + FIFO_PATH},
                },
            )
            poller_id = hookpost.add_destination(APP_UID, {"type": "pollingEndpoint", "uid": "poller", "config": {}})
            queued = self._queue_backlog(
                "destinations", cfg.destinations_backlog, hookpost.message_request(APP_UID), stack
            )
            settled_at = time.monotonic() + phase.settings.poller_settle + 0.5
            self.ui.done_step()
            self.add(self._fifo(stack, receiver, queued, settled_at))
            self.ui.done_step()
            self.add(self._poller(stack, hookpost, poller_id, queued))
            self._ratios_to_drain("fifo-destination", "poller")
            self.ui.done_step()
        finally:
            stack.stop()

    def _fifo(self, stack: Stack, receiver: str, queued: int, settled_at: float) -> dict[str, Any]:
        """One worker, default settings, set on the destination by the scheduler's first tick;
        it then sends full batches one after the other."""
        worker = stack.start_worker(name="worker")
        # Neither destination hands a message out before it is `poller_settle` old: the
        # scheduler starts once the whole backlog has, so the worker starts on all of it rather
        # than on what has settled so far (the worker's start-up overlaps the wait).
        while (left := settled_at - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))
            worker.check()
        stack.start_scheduler()
        try:
            scenario = self._time_drain("fifo-destination", worker, queued, receiver, FIFO_PATH)
        finally:
            stack.stop("worker", "scheduler")
        scenario["config"].update(
            batch_size=BATCH_SIZE,
            celery_concurrency="default (one per CPU)",
            request="one POST per batch, a JSON array of the messages",
        )
        return scenario

    def _poller(self, stack: Stack, hookpost: HookpostClient, poller_id: str, queued: int) -> dict[str, Any]:
        """One consumer, one request at a time, from the destination's creation until ``done``."""
        name = "poller"
        path = f"/app/{APP_UID}/poller/{poller_id}"
        received: set[str] = set()
        requests = 0
        window = CpuWindow(stack.pids("api"))
        started = time.monotonic()
        with hookpost.client() as client, self.ui.step(f"{name}: pulling {queued}", total=queued) as update:
            params: dict[str, Any] = {"limit": POLL_LIMIT}
            while True:
                answer = client.get(path, params=params)
                answer.raise_for_status()
                page = answer.json()
                requests += 1
                received.update(message["id"] for message in page["data"])
                update(len(received))
                if page["done"]:
                    break
                params = {"limit": POLL_LIMIT, "iterator": page["iterator"]}
        elapsed = time.monotonic() - started
        cpu = window.close()
        rate = len(received) / elapsed if elapsed > 0 else 0.0
        self.ui.log(f"{name}: {rate:,.0f} msg/s ({len(received)}/{queued} in {requests} requests)")
        return {
            "name": name,
            "config": {
                "backlog": queued,
                "limit": POLL_LIMIT,
                "consumer": "one httpx client, one request at a time, following the iterator until done",
                "measured": "first request to the answer saying done",
            },
            "msg_per_s": round(rate, 1),
            "p50_ms": None,
            "p99_ms": None,
            "max_ms": None,
            "delivered": len(received),
            "undelivered": queued - len(received),
            "requests": requests,
            "api_cpu_ms_per_msg": per(cpu["processes_cpu_s"], len(received)),
            "machine_cpu_ms_per_msg": per(cpu["machine_cpu_s"], len(received)),
            "machine_busy": cpu["machine_busy"],
        }

    def _ratios_to_drain(self, *names: str) -> None:
        drain = self.find("drain")
        if drain is not None:
            set_ratios_to_drain(drain, [s for s in self.scenarios if s["name"] in names])


def set_ratios_to_drain(drain: dict[str, Any], scenarios: list[dict[str, Any]]) -> None:
    """Each scenario's rate over the endpoint drain's, as ``ratio_to_drain`` (None with no drain rate)."""
    for scenario in scenarios:
        scenario["ratio_to_drain"] = (
            round(scenario["msg_per_s"] / drain["msg_per_s"], 3) if drain["msg_per_s"] else None
        )

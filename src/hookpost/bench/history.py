"""Phase ``history``: the same service on fresh tables and again after N past messages
(each with its delivery and attempt, spread over the retention and a few days past it) are
loaded by SQL: end to end delivery at a fixed offered rate (the ``e2e`` phase's run), ingest
and each read; then one retention run while ingest goes on."""

from __future__ import annotations

import asyncio
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hookpost.bench.base import EVENT_TYPE, HookpostClient, delivered_body, ms
from hookpost.bench.end_to_end import EndToEndPhase
from hookpost.bench.loadgen import HttpRequest, LoadResult
from hookpost.bench.stack import HOOKPOST_APP, Stack
from hookpost.delivery.retention import Removed, cutoff_id, remove_expired_history
from hookpost.kit.ids import created_ms, first_id_at
from hookpost.settings import Settings
from hookpost.storage import partitions
from hookpost.storage.database import create_engine, create_sessionmaker
from hookpost.storage.models import Attempt, Delivery, EndpointRollup, Message

APP = "bench-history"
RARE_EVENT = "history.rare"  # one past message in RARE_EVERY, for the filtered list
RARE_EVERY = 1000
PAST_DAYS_BEYOND = 5  # the history reaches this far past the retention: the run removes that
CHUNK = 50_000


def _past_rows(count: int, app_id: str, endpoint_id: str, retention_days: float) -> Iterator[tuple[Any, ...]]:
    """(message, delivery, attempt) rows, oldest first, one a distinct millisecond apart or more."""
    newest = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    oldest = newest - int((retention_days + PAST_DAYS_BEYOND) * 86_400_000)
    step = (newest - oldest) // count
    payload = delivered_body()
    for n in range(count):
        at_ms = oldest + n * step
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        msg_id, delivery_id = first_id_at("msg", at_ms), first_id_at("dlv", at_ms)
        event_type = RARE_EVENT if n % RARE_EVERY == 0 else EVENT_TYPE
        yield (
            (msg_id, app_id, None, None, event_type, payload, None, None, at, None, None),
            (delivery_id, app_id, msg_id, endpoint_id, 0, 0, 1, None, None, None, at, at),
            (
                first_id_at("atmpt", at_ms),
                app_id,
                msg_id,
                endpoint_id,
                delivery_id,
                "http://127.0.0.1:9/never",
                0,
                0,
                200,
                "",
                5,
                None,
                at,
            ),
        )


_COLUMNS = {
    Message: [
        "id",
        "app_id",
        "event_id",
        "idempotency_key",
        "event_type",
        "payload",
        "channels",
        "tags",
        "created_at",
        "deliver_at",
        "payload_expires_at",
    ],
    Delivery: [
        "id",
        "app_id",
        "msg_id",
        "endpoint_id",
        "status",
        "trigger_type",
        "attempt_count",
        "next_attempt_at",
        "queued_until",
        "lease_until",
        "created_at",
        "updated_at",
    ],
    Attempt: [
        "id",
        "app_id",
        "msg_id",
        "endpoint_id",
        "delivery_id",
        "url",
        "status",
        "trigger_type",
        "response_status_code",
        "response",
        "response_duration_ms",
        "error",
        "created_at",
    ],
}


async def _write_chunk(engine: AsyncEngine, rows: list[tuple[Any, ...]], postgres: bool) -> None:
    async with engine.begin() as connection:
        for index, model in enumerate(_COLUMNS):
            records = [row[index] for row in rows]
            names = _COLUMNS[model]
            if postgres:  # COPY: the fastest way in
                raw = await connection.get_raw_connection()
                driver: Any = raw.driver_connection
                await driver.copy_records_to_table(model.__tablename__, records=records, columns=names)
            else:
                await connection.execute(insert(model), [dict(zip(names, r, strict=True)) for r in records])


async def load_history(settings: Settings, count: int, app_id: str, endpoint_id: str) -> dict[str, Any]:
    """Load ``count`` past messages as delivered, with the endpoint's hourly counts; on
    PostgreSQL into the weeks' partitions, made first as the upkeep would have. Returns the timings."""
    engine = create_engine(settings)
    postgres = not settings.is_sqlite
    started = time.monotonic()
    hours: Counter[datetime] = Counter()
    try:
        if postgres:
            today = datetime.now(UTC).date()
            async with engine.begin() as connection:
                for back in range(0, int(settings.retention_days) + PAST_DAYS_BEYOND + 8, 7):
                    for statement in partitions.create_period_statements(today - timedelta(days=back)):
                        await connection.execute(text(statement))
        chunk: list[tuple[Any, ...]] = []
        for row in _past_rows(count, app_id, endpoint_id, settings.retention_days):
            chunk.append(row)
            hours[row[0][8].replace(minute=0, second=0, microsecond=0)] += 1
            if len(chunk) == CHUNK:
                await _write_chunk(engine, chunk, postgres)
                chunk = []
        if chunk:
            await _write_chunk(engine, chunk, postgres)
        async with engine.begin() as connection:
            rollup = [
                {"endpoint_id": endpoint_id, "period": hour, "app_id": app_id, "success": n, "attempt_success": n}
                | {"fail": 0, "canceled": 0, "attempt_fail": 0}
                for hour, n in hours.items()
            ]
            await connection.execute(insert(EndpointRollup), rollup)
        loaded_s = time.monotonic() - started
        async with engine.connect() as connection:
            # As autovacuum would, soon after: plans on the loaded tables' statistics.
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("ANALYZE"))
        return {
            "messages": count,
            "load_s": round(loaded_s, 1),
            "analyze_s": round(time.monotonic() - started - loaded_s, 1),
        }
    finally:
        await engine.dispose()


async def _ids(settings: Settings, app_uid: str) -> tuple[str, str, str]:
    """The application's id, its endpoint's id, and its oldest message's id (the end to end
    runs' applications have older ones)."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            app_id, endpoint_id = (
                await connection.execute(
                    text("SELECT a.id, e.id FROM application a JOIN endpoint e ON e.app_id = a.id WHERE a.uid = :uid"),
                    {"uid": app_uid},
                )
            ).one()
            oldest = await connection.scalar(select(func.min(Message.id)).where(Message.app_id == app_id))
        return str(app_id), str(endpoint_id), str(oldest)
    finally:
        await engine.dispose()


async def _past_retention(settings: Settings) -> dict[str, Any]:
    """Rows older than the retention, and than the start of its week (where partitions cut)."""
    engine = create_engine(settings)
    now = datetime.now(UTC)
    cutoff = cutoff_id(now, settings.retention_days)
    cut = now - timedelta(days=settings.retention_days)
    week = partitions.period_bounds(cut.date())[0]
    try:
        async with engine.connect() as connection:
            older = await connection.scalar(select(func.count()).where(Message.id < cutoff))
            older_than_week = await connection.scalar(select(func.count()).where(Message.id < week))
            oldest = await connection.scalar(select(func.min(Message.id)))
    finally:
        await engine.dispose()
    oldest_days = None if oldest is None else round((now.timestamp() * 1000 - created_ms(oldest)) / 86_400_000, 2)
    return {"older_than_retention": older, "older_than_its_week": older_than_week, "oldest_days": oldest_days}


class _Reader:
    """Each read the API and the console offer, timed one after another (p50 of ``count``)."""

    def __init__(self, base_url: str, token: str, app: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self.api = {"authorization": f"Bearer {token}"}
        self.app = app
        page = self.http.get("/console/sign-in")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        signed = self.http.post(
            "/console/sign-in", data={"token": token, "csrf_token": csrf.group(1) if csrf else "", "next": "/console/"}
        )
        if signed.status_code != 303:  # signed in: sent on to the overview
            raise RuntimeError(f"history: the console's sign-in answered {signed.status_code}")

    def paths(self, msg_id: str) -> dict[str, str]:
        app = f"/api/v1/app/{self.app}"
        return {
            "list": f"{app}/msg?limit=50",
            "filtered_list": f"{app}/msg?limit=50&event_types={RARE_EVENT}",
            "by_id": f"{app}/msg/{msg_id}",
            "endpoint_stats": f"{app}/endpoint/main/stats",
            "attempt_stats": f"{app}/endpoint/main/attempt-stats",
            "console_overview": "/console/",
        }

    def p50s(self, msg_id: str, count: int) -> dict[str, float | None]:
        found: dict[str, float | None] = {}
        for name, path in self.paths(msg_id).items():
            headers = {} if path.startswith("/console") else self.api
            self.http.get(path, headers=headers).raise_for_status()  # warm: the first carries a connection's set-up
            took = []
            for _ in range(count):
                started = time.perf_counter()
                self.http.get(path, headers=headers).raise_for_status()
                took.append(1000 * (time.perf_counter() - started))
            found[name] = ms(statistics.median(took))
        return found

    def close(self) -> None:
        self.http.close()


class HistoryPhase(EndToEndPhase):
    def history_phase(self) -> None:
        cfg = self.config
        phase = self.env.phase("history")
        settings = phase.settings
        stack = Stack(phase, self.env.logs)
        try:
            with self.ui.step("history: the API, a worker, the scheduler and a receiver"):
                api_url = stack.start_api(HOOKPOST_APP, cfg.workers, wait=False)
                self._start_delivery(stack)
                receiver = stack.start_receiver()
                stack.wait_api("api")
            hookpost = HookpostClient(api_url, self.env.admin_token)
            fresh_e2e = self._history_e2e("history-e2e-fresh", stack, hookpost, receiver)
            self.ui.done_step()
            # Sent nowhere: the worker runs only in the end to end runs, this endpoint disabled then.
            hookpost.application_with_endpoint(APP, "http://127.0.0.1:9/never")
            reader = _Reader(api_url, self.env.admin_token, APP)
            ingest = hookpost.message_request(APP)
            self._closed("history: warm-up", ingest, cfg.warmup_seconds, stack, "api")
            fresh, _ = self._closed("history: ingest on fresh tables", ingest, cfg.closed_seconds, stack, "api")
            app_id, endpoint_id, newest_msg = asyncio.run(_ids(settings, APP))
            fresh_reads = reader.p50s(newest_msg, cfg.history_reads)
            with self.ui.step(f"history: loading {cfg.history_messages:,} past messages by SQL"):
                loaded = asyncio.run(load_history(settings, cfg.history_messages, app_id, endpoint_id))
            self.ui.log(f"history: {cfg.history_messages:,} past messages loaded in {loaded['load_s']} s")
            self._closed("history: warm-up on loaded tables", ingest, cfg.warmup_seconds, stack, "api")
            after, _ = self._closed("history: ingest on loaded tables", ingest, cfg.closed_seconds, stack, "api")
            _, _, oldest_msg = asyncio.run(_ids(settings, APP))
            loaded_reads = reader.p50s(oldest_msg, cfg.history_reads)
            reader.close()
            # The ingest runs' deliveries (to nowhere), and the tasks the API published for them,
            # would be the worker's first work: neither is the run's.
            hookpost.disable_endpoint(APP)
            stack.purge_queue()
            with self.ui.step("history: a worker and the scheduler again"):
                self._start_delivery(stack)
            loaded_e2e = self._history_e2e("history-e2e-loaded", stack, hookpost, receiver)
            self.ui.done_step()
            hookpost.enable_endpoint(APP)
            during, removed, retention_s = self._ingest_during_retention(ingest, settings, stack)
            remains = asyncio.run(_past_retention(settings))
        finally:
            stack.stop()
        scenario = self._scenario(fresh, after, during, fresh_reads, loaded_reads, loaded, removed, retention_s)
        scenario["after_retention"] = remains
        loaded_e2e["config"]["past_messages"] = cfg.history_messages
        loaded_e2e["loaded_ratios"] = {
            key: _ratio(loaded_e2e[key], fresh_e2e[key])
            for key in ("msg_per_s", "p50_ms", "p99_ms", "stack_cpu_ms_per_msg")
        }
        self.ui.log(
            f"history: ingest {scenario['ingest_ratio']}x fresh, e2e {loaded_e2e['loaded_ratios']['msg_per_s']}x "
            f"fresh (p99 {loaded_e2e['p99_ms']} ms against {fresh_e2e['p99_ms']} ms), reads p50 {loaded_reads}, "
            f"retention run {retention_s} s (ingest p99 {during.p99_ms:.1f} ms during vs {after.p99_ms:.1f} ms), "
            f"left {remains}"
        )
        for made in (scenario, fresh_e2e, loaded_e2e):
            self.add(made)
        self.ui.done_step()

    def _start_delivery(self, stack: Stack) -> None:
        """A worker and the scheduler, as ``hookpost serve`` runs them."""
        stack.start_worker()
        # The scheduler removes expired history on its first tick: on the loaded tables that is
        # the retention run measured last, alone. Its own retention keeps all of the loaded history.
        kept_days = stack.phase.settings.retention_days + PAST_DAYS_BEYOND + 1
        stack.start_scheduler(HOOKPOST_RETENTION_DAYS=f"{kept_days:g}")

    def _history_e2e(self, name: str, stack: Stack, hookpost: HookpostClient, receiver: str) -> dict[str, Any]:
        """The ``e2e`` phase's fixed-rate run, once the worker delivers; then the worker and the
        scheduler are stopped: the ingest runs and reads are measured with no worker, as ever."""
        cfg = self.config
        try:
            warm_up = f"{name}-warm-up"
            self._one_delivered(warm_up, stack, hookpost, receiver, timeout=120.0)
            # The API as warm as before the ingest runs (the first run follows its start); to an
            # endpoint disabled by now, so nothing is the worker's work.
            self._closed(f"{name}: warm-up", hookpost.message_request(warm_up), cfg.warmup_seconds, stack, "api")
            path = f"/{name}"
            hookpost.application_with_endpoint(name, receiver + path)
            request = hookpost.message_request(name)
            scenario = self._offered(
                name, cfg.history_e2e_rate, cfg.history_e2e_seconds, request, receiver, path, stack
            )
            hookpost.disable_endpoint(name)
        finally:
            # Its work is done (drained, or given up on): its graceful shutdown is of no interest,
            # and a worker's warm shutdown takes seconds (more on the embedded broker).
            stack.stop("worker", "scheduler", timeout=0.0)
        return scenario

    def _ingest_during_retention(
        self, ingest: HttpRequest, settings: Settings, stack: Stack
    ) -> tuple[LoadResult, Removed, float]:
        """A closed-loop ingest run with one retention run started a second into it."""
        outcome: dict[str, Any] = {}

        def retention() -> None:
            time.sleep(1.0)  # into the load's window, not before it
            started = time.monotonic()
            outcome["removed"] = asyncio.run(_remove(settings))
            outcome["seconds"] = round(time.monotonic() - started, 3)

        thread = threading.Thread(target=retention, name="history-retention")
        thread.start()
        during, _ = self._closed(
            "history: ingest while a retention run goes on", ingest, self.config.closed_seconds, stack, "api"
        )
        thread.join()
        return during, outcome["removed"], outcome["seconds"]

    def _scenario(
        self,
        fresh: LoadResult,
        after: LoadResult,
        during: LoadResult,
        fresh_reads: dict[str, float | None],
        loaded_reads: dict[str, float | None],
        loaded: dict[str, Any],
        removed: Removed,
        retention_s: float,
    ) -> dict[str, Any]:
        return {
            "name": "history",
            "config": {
                "past_messages": self.config.history_messages,
                "reads_each": self.config.history_reads,
                "seconds": self.config.closed_seconds,
                "connections": after.connections,
                "loaded": loaded,
                "figures": "ingest on the loaded tables; reads: p50 of sequential requests, client side",
            },
            "msg_per_s": round(after.ok_per_s, 1),
            "p50_ms": ms(after.p50_ms),
            "p99_ms": ms(after.p99_ms),
            "max_ms": ms(after.max_ms),
            "fresh_msg_per_s": round(fresh.ok_per_s, 1),
            "fresh_p99_ms": ms(fresh.p99_ms),
            "ingest_ratio": round(after.ok_per_s / fresh.ok_per_s, 3) if fresh.ok_per_s else None,
            "reads_fresh_p50_ms": fresh_reads,
            "reads_loaded_p50_ms": loaded_reads,
            "slowest_read_p50_ms": max((v for v in loaded_reads.values() if v is not None), default=None),
            "retention_run_s": retention_s,
            "retention_removed": {
                "weeks_dropped": removed.weeks_dropped,
                "weeks_kept": removed.weeks_kept,
                "messages_deleted": removed.messages,
            },
            "ingest_during_retention_msg_per_s": round(during.ok_per_s, 1),
            "ingest_during_retention_p99_ms": ms(during.p99_ms),
            "retention_p99_ratio": round(during.p99_ms / after.p99_ms, 3) if after.p99_ms else None,
            "errors": fresh.errors + after.errors + during.errors,
        }


def _ratio(loaded: float | None, fresh: float | None) -> float | None:
    return round(loaded / fresh, 3) if loaded is not None and fresh else None


async def _remove(settings: Settings) -> Removed:
    engine = create_engine(settings)
    try:
        return await remove_expired_history(create_sessionmaker(engine), settings)
    finally:
        await engine.dispose()

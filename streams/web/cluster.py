"""Answers gathered from every worker: each owns some partitions, so a count is the sum of their partials.

Each worker answers for its own partitions in an envelope naming the group
generation it owns them in (:func:`owner_envelope`); the asking worker uses
each partition once, from its current owner (:func:`streams.core.ownership.current_owners`).
When some owner cannot answer for the counts, they are asked again with
``standby=1``, and each envelope then also answers for the standby replicas its
worker keeps, which stand in for that owner (:func:`streams.core.ownership.serving`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import aiohttp
import faust
import orjson

from streams.core.ownership import Incomplete, OwnerAnswer, StandbyAnswer, serving
from streams.core.queries import (
    observed_series,
    reconcile_all,
)
from streams.core.reading import Partial, PartitionReading
from streams.core.state import merge_partials
from streams.engine.partitions import NotReady
from streams.engine.runtime import Runtime

log = logging.getLogger(__name__)
INTERNAL_PARTIALS = "/internal/partials"
INTERNAL_STATEMENTS = "/internal/statements"
INTERNAL_SEEN = "/internal/seen"
INTERNAL_OFFSETS = "/internal/offsets"
INTERNAL_SNAPSHOT = "/internal/snapshot"
INTERNAL_OVERVIEW = "/internal/overview"
#: the query parameter that asks a peer to answer for its standby replicas too
STANDBY_PARAMETER = "standby"


def local_partials(readings: Iterable[PartitionReading], series: Iterable[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    readings = list(readings)
    for series_code, key in series:
        parts = []
        for reading in readings:
            one = reading.partial(series_code, key)
            if one is not None:
                parts.append({"buckets": one.buckets, "total": one.total, "stream_time": one.stream_time})
        out[f"{series_code}:{key}"] = parts
    return out


def local_seen(readings: Iterable[PartitionReading], ids_by_topic: dict[str, list[str]]) -> set[str]:
    found = set()
    for reading in readings:
        for event_id in ids_by_topic.get(reading.topic, ()):
            if reading.has_seen(event_id):
                found.add(event_id)
    return found


async def local_snapshots(runtime: Runtime, wanted: dict[str, int], wait: float) -> dict[str, dict[str, Any]]:
    futures = {}
    for tp, offset in wanted.items():
        topic, _, partition = tp.rpartition("|")
        futures[tp] = runtime.snapshot_at(topic, int(partition), offset)
    if futures:
        await asyncio.wait(futures.values(), timeout=wait)
    answers = {tp: future.result() if future.done() else {"status": "timeout"} for tp, future in futures.items()}
    for future in futures.values():
        future.cancel()  # a wait that timed out is forgotten (Runtime.snapshot_at), not left for every record to walk past
    return answers


async def owner_envelope(
    runtime: Runtime, worker: str, answer: Callable[[], Any], standby: Callable[[list[PartitionReading]], Any] | None = None
) -> dict[str, Any]:
    """This worker's answer for its own partitions, with the generation it owns them in; no answer while it cannot serve them.

    With ``standby``, also its answer for each standby replica it keeps that
    is shown current (:meth:`Runtime.standbys`), from that replica's states,
    with the replica's lag.
    """
    ownership = runtime.partitions.ownership()
    envelope: dict[str, Any] = {"worker": worker, "generation": ownership.generation, "partitions": sorted(ownership.partitions)}
    if ownership.unavailable is not None:
        return envelope | {"unavailable": ownership.unavailable}
    try:
        envelope["answer"] = answer()
    except NotReady as exc:
        return envelope | {"unavailable": str(exc)}
    if standby is not None:
        envelope["standbys"] = [
            {"partition": replica.partition, "lag": lag, "answer": standby(replica.readings())}
            for replica, lag in await runtime.standbys.current()
        ]
    return envelope


def unanswered_reason(exc: Exception) -> str:
    """Why a peer gave no answer, in words for the operator who reads the 503."""
    if isinstance(exc, NotReady):
        return "is recovering its state or rebalancing"
    if isinstance(exc, TimeoutError):
        return "did not answer in time"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"answered HTTP {exc.status}"
    return f"could not be reached ({exc})" if str(exc) else f"could not be reached ({type(exc).__name__})"


def _owner_answer(envelope: Any, url: str) -> OwnerAnswer[Any]:
    """A peer's envelope read back; anything malformed is an unavailable answer, not an error."""
    try:
        unavailable = envelope.get("unavailable")
        return OwnerAnswer(
            worker=url,
            generation=int(envelope["generation"]),
            partitions=frozenset(int(p) for p in envelope["partitions"]),
            body=envelope.get("answer"),
            unavailable=None if unavailable is None and "answer" in envelope else str(unavailable or "answered without a body"),
            standbys=tuple(StandbyAnswer(int(s["partition"]), int(s["lag"]), s["answer"]) for s in envelope.get("standbys", ())),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return OwnerAnswer(url, -1, frozenset(), None, "answered in a shape this worker does not know (another version?)")


#: connections kept to each peer: enough for the queries in flight at once, few enough to bound the sockets
PEER_CONNECTIONS: Final = 16
#: an idle kept connection is closed after this long
PEER_KEEPALIVE_SECONDS: Final = 30.0


#: a peer that let a query time out is asked with this timeout for a while: later queries fail fast, not each after the full wait
SILENT_PEER_TIMEOUT: Final = 1.0
#: how long that lasts; then the peer is given the full timeout again
SILENT_PEER_MEMORY: Final = 30.0


class SilentPeers:
    """The peers that recently let a query time out.

    A worker cut off or frozen keeps its place in the group until its
    session ends; every query needing its partitions would wait out the full
    timeout meanwhile. After one such timeout, queries ask that peer with
    :data:`SILENT_PEER_TIMEOUT` for :data:`SILENT_PEER_MEMORY` seconds, or
    until it answers. The memory is not extended by a short timeout, so a
    peer that is only slow is given the full timeout again once it lapses.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}

    def timeout(self, url: str, normal: float) -> float:
        until = self._until.get(url)
        if until is not None and self._clock() >= until:
            del self._until[url]
            until = None
        return normal if until is None else min(normal, SILENT_PEER_TIMEOUT)

    def timed_out(self, url: str) -> None:
        now = self._clock()
        self._until = {peer: until for peer, until in self._until.items() if until > now}
        self._until.setdefault(url, now + SILENT_PEER_MEMORY)

    def answered(self, url: str) -> None:
        self._until.pop(url, None)

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, url: str) -> bool:
        until = self._until.get(url)
        return until is not None and self._clock() < until


class Cluster:
    """Scatter-gather over the workers that own the partitions."""

    def __init__(self, app: faust.App, runtime: Runtime, headers: dict[str, str], partitions: int) -> None:
        self.app = app
        self.runtime = runtime
        #: sent with every request to a peer (the cluster secret)
        self.headers = headers
        #: every input topic's partition count: an answer must cover each partition once
        self.partitions = partitions
        self._client: aiohttp.ClientSession | None = None
        self.silent = SilentPeers()

    def _session(self) -> aiohttp.ClientSession:
        """One client for every query, so that connections to the peers are kept and reused, not opened per query."""
        if self._client is None or self._client.closed:
            connector = aiohttp.TCPConnector(limit_per_host=PEER_CONNECTIONS, keepalive_timeout=PEER_KEEPALIVE_SECONDS)
            self._client = aiohttp.ClientSession(headers=self.headers, connector=connector)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    @property
    def me(self) -> str:
        return str(self.app.conf.canonical_url).rstrip("/")

    def _peers(self) -> list[str]:
        me = self.me
        peers = []
        for url in self.app.router.tables_metadata():
            peer = str(url).rstrip("/")
            if peer != me:
                peers.append(peer)
        return sorted(set(peers))

    async def _fetch(
        self,
        path: str,
        params: list[tuple[str, str]],
        body: Any = None,
        timeout_s: float = 10,
        unanswered: Callable[[str, Exception], Any] | None = None,
        fail_fast: bool = True,
        skip: frozenset[str] = frozenset(),
    ) -> list[Any]:
        """Every peer's JSON answer to GET ``path`` (or POST of ``body``).

        A peer that is recovering or does not answer makes the whole answer
        :class:`NotReady`, unless ``unanswered`` says what stands in its place.
        With ``fail_fast``, a peer that recently let a query time out is given
        a short timeout (:class:`SilentPeers`). Peers in ``skip`` are not
        asked: they stand as having timed out.
        """
        peers = self._peers()
        if not peers:
            return []
        method = "GET" if body is None else "POST"
        data = None if body is None else orjson.dumps(body)
        session = self._session()

        async def ask(url: str) -> Any:
            wait = self.silent.timeout(url, timeout_s) if fail_fast else timeout_s
            async with session.request(method, url + path, params=params, data=data, timeout=aiohttp.ClientTimeout(total=wait)) as response:
                if response.status == 503:
                    raise NotReady(f"worker {url} is recovering its state or rebalancing; retry shortly")
                response.raise_for_status()
                return orjson.loads(await response.read())

        async def one(url: str) -> Any:
            if url in skip and unanswered is not None:
                return unanswered(url, TimeoutError())
            try:
                try:
                    answer = await ask(url)
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                    answer = await ask(url)  # a kept connection the peer had closed (it restarted): once more, on a new one
                self.silent.answered(url)
                return answer
            except (aiohttp.ClientError, TimeoutError, NotReady, orjson.JSONDecodeError) as exc:
                if isinstance(exc, TimeoutError):
                    self.silent.timed_out(url)
                elif isinstance(exc, NotReady | aiohttp.ClientResponseError):  # it answered, if not with a body
                    self.silent.answered(url)
                if unanswered is not None:
                    return unanswered(url, exc)
                if isinstance(exc, NotReady):
                    raise
                raise NotReady(f"worker {url} did not answer ({exc!r}); retry shortly") from None

        return list(await asyncio.gather(*(one(url) for url in peers)))

    async def _from_owners(
        self,
        path: str,
        params: list[tuple[str, str]],
        local: Callable[[], Any],
        body: Any = None,
        standby: Callable[[list[PartitionReading]], Any] | None = None,
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        """The answers of the current owners of every partition, this worker's own among them (``local()``).

        With ``standby`` (this worker's answer from a replica's states; the
        peers are asked for theirs by ``path``), a partition whose owner cannot
        answer is read from a standby replica; the second list names each
        such partition, the worker and its lag. Raises
        :class:`~streams.core.ownership.Incomplete` naming the partitions
        neither an owner nor a standby answered for.
        """

        def unanswered(url: str, exc: Exception) -> dict[str, Any]:
            return {"generation": -1, "partitions": [], "unavailable": unanswered_reason(exc)}

        async def gathered(with_standbys: bool, skip: frozenset[str] = frozenset()) -> list[OwnerAnswer[Any]]:
            peers = self._peers()
            asked = [*params, (STANDBY_PARAMETER, "1")] if with_standbys else params
            envelopes = await self._fetch(path, asked, body, unanswered=unanswered, skip=skip)
            answers = [_owner_answer(await owner_envelope(self.runtime, self.me, local, standby if with_standbys else None), self.me)]
            return answers + [_owner_answer(envelope, url) for url, envelope in zip(peers, envelopes, strict=True)]

        owners = await gathered(False)
        try:
            served = serving(owners, self.partitions, standbys=False)
        except Incomplete:
            if standby is None:
                raise
            # replicas are read only when an owner is missing: reading them costs each worker a load of their states;
            # a peer that has just let this query time out is not waited for twice
            silent = frozenset(a.worker for a in owners if a.unavailable == unanswered_reason(TimeoutError()))
            served = serving(await gathered(True, silent), self.partitions)
        stand_ins = [{"partition": p, "worker": worker, "lag": replica.lag} for p, (worker, replica) in sorted(served.standbys.items())]
        return [a.body for a in served.owners] + [replica.body for _, replica in served.standbys.values()], stand_ins

    async def partials(self, series: list[tuple[str, str]]) -> tuple[dict[str, Partial], list[dict[str, Any]]]:
        """``series name -> (buckets, total, stream time)`` summed over every partition, and the partitions read from standbys."""
        answers, stand_ins = await self._from_owners(
            INTERNAL_PARTIALS,
            [("series", f"{k}:{v}") for k, v in series],
            lambda: local_partials(self.runtime.partitions.readings(), series),
            standby=lambda readings: local_partials(readings, series),
        )
        merged: dict[str, Partial] = {}
        for series_code, key in series:
            name = f"{series_code}:{key}"
            parts = [part for answer in answers for part in answer.get(name, [])]
            buckets, total = merge_partials(parts)
            times = [p["stream_time"] for p in parts if p.get("stream_time") is not None]
            merged[name] = Partial(buckets, total, max(times) if times else None)
        return merged, stand_ins

    async def seen(self, ids_by_topic: dict[str, list[str]]) -> set[str]:
        """The ids that some worker's stream has already counted (within the dedup horizon)."""
        found: set[str] = set()
        answers, _ = await self._from_owners(
            INTERNAL_SEEN, [], lambda: sorted(local_seen(self.runtime.partitions.readings(), ids_by_topic)), ids_by_topic
        )
        for answer in answers:
            found.update(answer)
        return found

    async def offsets(self) -> dict[str, int]:
        """Last applied offset of every input partition, from whichever worker owns it."""
        found: dict[str, int] = {}
        answers, _ = await self._from_owners(INTERNAL_OFFSETS, [], self.runtime.partitions.offsets)
        for answer in answers:
            found.update(answer)
        return found

    async def snapshots(self, wanted: dict[str, int], wait: float) -> dict[str, dict[str, Any]]:
        """``topic|partition -> snapshot at offset`` from the owners (see Runtime.snapshot_at)."""
        params = [("at", f"{tp}|{offset}") for tp, offset in wanted.items()] + [("wait", str(wait))]
        found = await local_snapshots(self.runtime, wanted, wait)
        for answer in await self._fetch(INTERNAL_SNAPSHOT, params, timeout_s=wait + 10, fail_fast=False):
            for tp, result in answer.items():
                if result.get("status") != "not-owned":
                    found[tp] = result
        return found

    async def overviews(self) -> list[dict[str, Any]]:
        """Every peer's part of the overview; one that does not answer is reported as such rather than failing the rest."""

        def unanswered(url: str, exc: Exception) -> dict[str, Any]:
            return {"worker": url, "ready": False, "error": f"did not answer: {type(exc).__name__}"}

        return await self._fetch(INTERNAL_OVERVIEW, [], timeout_s=5, unanswered=unanswered)

    async def statements(self, country: str | None, *, owned_only: bool = False) -> list[dict[str, Any]]:
        """Statements reconciled against every worker's counts (only this worker's statements if owned_only)."""
        if owned_only:
            items = local_statements(self.runtime)
        else:
            answers, _ = await self._from_owners(INTERNAL_STATEMENTS, [], lambda: local_statements(self.runtime))
            items = [s for answer in answers for s in answer]
        if country is not None:
            items = [s for s in items if s["country"] == country]
        wanted = observed_series(items)
        partials = (await self.partials(wanted))[0] if wanted else {}
        return reconcile_all(items, lambda series_code, country: partials[f"{series_code}:{country}"][0])


def local_statements(runtime: Runtime) -> list[Mapping[str, Any]]:
    """The statements of the statement partitions this worker owns."""
    readings = runtime.partitions.readings()
    return [s for reading in readings if reading.topic == runtime.topics.statements for s in reading.statements()]

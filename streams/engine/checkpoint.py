"""The checkpoint: borderflow's exactness protocol, end to end, in the order it runs.

Kafka and Faust deliver at least once; the counts are exact because of what
happens between a batch being read and its input offset being committed
(docs/architecture.md, "Exactly counted under at-least-once"):

1. **section** (:meth:`Checkpoint.section`): a batch is applied to its
   partition's state, written to the local store, its changelog, dead
   letters and window results queued into the producer and its forwards
   handed to the output's thread, as one
   section that runs to its end even if the agent is cancelled. Commits and
   revocations wait for it (:attr:`Checkpoint.lock`), so they never see half a
   batch. A section that fails half-way stops the worker
   (:meth:`Checkpoint.stop_after_failure`).
2. **mark** (:meth:`Checkpoint.processed`): the partition is marked processed
   through the batch's last offset, only after its section ended.
3. **flush and check** (:meth:`Checkpoint.before_commit`): before any commit
   the forwards are in the producer, the producer is flushed and every record
   batch checked as delivered; a
   failed one stops the commit (and the worker), so the input is read again.
4. **commit** (:meth:`Checkpoint.commit_offset`): what is committed is the mark
   plus one: never an offset whose effects are not in Kafka.
5. **clean stop** (:func:`prepare_local_state`, :func:`mark_clean_stop`): the
   local store is kept across restarts only after a clean stop; otherwise it
   may hold writes that never reached the changelog, and is rebuilt from it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, TypeVar

from faust.types import TP

from streams.engine.output import DirectOutput

log = logging.getLogger(__name__)
_T = TypeVar("_T")

CLEAN_SHUTDOWN: Final = "CLEAN_SHUTDOWN"
#: seconds a worker stopping after a failed batch has for Faust's orderly stop (leaving the group) before it exits at once
STOP_AFTER_FAILURE_WITHIN: Final = 15.0
#: the exit status of a worker stopped by a failed batch (EX_SOFTWARE)
FAILED_EXIT_CODE: Final = 70


class Checkpoint:
    def __init__(self, output: DirectOutput, crash: Callable[[BaseException], Coroutine[Any, Any, None]]) -> None:
        """``crash``: stops the app (Faust's ``App.crash``)."""
        self.output = output
        self._crash = crash
        #: held while a batch's section runs; commits and revocations take it too
        self.lock = asyncio.Lock()
        self._marks: dict[TP, int] = {}
        self._in_section = False
        #: what made a section fail half-way: the worker is stopping
        self.failure: Exception | None = None
        self._on_failure: list[Callable[[], None]] = []
        self._stopping: asyncio.Task[None] | None = None

    # 1. the section ------------------------------------------------------------
    async def section(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run a batch's section whole, under :attr:`lock`, even if the caller is cancelled (a worker stopping)."""

        async def guarded() -> _T:
            async with self.lock:
                if self.failure is not None:  # stopping: apply nothing more
                    work.close()
                    raise self.failure
                self._in_section = True
                try:
                    result = await work
                except Exception as exc:
                    self.stop_after_failure(exc)
                    raise
                self._in_section = False
                return result

        return await asyncio.shield(guarded())

    @property
    def interrupted(self) -> bool:
        """Whether a section was left unfinished: the local store may hold what the changelog does not."""
        return self._in_section

    def on_failure(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a section fails (to drop state held in memory)."""
        self._on_failure.append(callback)

    def stop_after_failure(self, exc: Exception) -> None:
        """A section failed half-way (a local store write refused: disk full): stop the worker.

        The state in memory may then be ahead of the local store, and the
        store ahead of the changelog. Carrying on from memory would let later
        progress records cover what neither holds (undercounting on the next
        recovery); restarting the agent from the store would read a batch
        half-written. So nothing more is applied, nothing after the batch is
        committed, and the worker stops; marked unclean (:attr:`interrupted`),
        it rebuilds its local store from the changelog when it starts again.
        """
        if self.failure is not None:
            return
        self.failure = exc
        for callback in self._on_failure:
            callback()
        log.critical(
            "a batch could not be applied and written (%r): stopping this worker; its input is read again from the last "
            "committed offsets, and its local state rebuilt from the changelog, when it starts again",
            exc,
        )
        loop = asyncio.get_running_loop()
        self._stopping = loop.create_task(self._crash(exc))
        # Faust's stop can wait for streams that will never drain; exiting unclean is as safe as a SIGKILL
        loop.call_later(STOP_AFTER_FAILURE_WITHIN, _exit_now, FAILED_EXIT_CODE)

    # 2. the mark -------------------------------------------------------------
    def processed(self, tp: TP, offset: int) -> None:
        """Everything up to ``offset`` in ``tp`` is applied and its effects are queued to the producer."""
        self._marks[tp] = offset

    def forget(self, tps: set[TP]) -> None:
        """Revoked partitions: their next owner commits them."""
        for tp in tps:
            self._marks.pop(tp, None)

    # 3. flush and check --------------------------------------------------------
    async def before_commit(self, flush: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Flush the producer and check every record batch was delivered; raise if one was not."""
        await flush()
        self.output.check()

    # 4. the commit -------------------------------------------------------------
    def commit_offset(self, tp: TP) -> int | None:
        """The offset to commit for ``tp`` (the next to read), or None if no batch of it was marked."""
        mark = self._marks.get(tp)
        return None if mark is None else mark + 1


def _exit_now(code: int) -> None:
    log.critical("the worker did not stop in time after a failed batch: exiting with %d", code)
    logging.shutdown()
    os._exit(code)


# 5. the clean stop -------------------------------------------------------------
def prepare_local_state(state_dir: Path, tables: Path) -> bool:
    """Keep the local store only if the last run stopped cleanly; return whether it was kept.

    Table writes reach the local store at once but the changelog only when the
    producer flushes. After a crash the store may hold writes that never
    reached Kafka; kept, they would make this worker disagree with any worker
    that recovers the same partitions from the changelog. So after an unclean
    stop the store is dropped and rebuilt from the changelog, which is the
    source of truth.
    """
    marker = state_dir / CLEAN_SHUTDOWN
    kept = marker.exists() or not tables.exists()
    if not kept:
        log.warning("last run of this worker did not stop cleanly: rebuilding local state from the changelogs")
        shutil.rmtree(tables)
    marker.unlink(missing_ok=True)
    return kept


def mark_clean_stop(state_dir: Path, exit_code: object, checkpoint: Checkpoint) -> bool:
    """After the worker stopped: leave the marker that keeps the local store, if the stop was clean."""
    clean = exit_code in (0, None) and not checkpoint.interrupted and checkpoint.failure is None
    if clean:
        (state_dir / CLEAN_SHUTDOWN).touch()
    return clean

"""The lease watcher: a dead worker's task back on the queue in seconds, a live pass never
handed to a second worker.

Why: with Redis as the broker, a task taken but not acknowledged sits in kombu's
``unacked`` hash, scored in ``unacked_index`` by the time it was taken; once older than
the visibility timeout, any worker puts it back on the queue. That one number is wrong
both ways: a machine that dies holds its pass hostage for the whole timeout (an hour by
default), and a pass that runs longer than the timeout is delivered a second time while
it still runs (that delivery only waits for the lease, but it holds a worker meanwhile).

The state database knows better: a task's pass holds a lease (engine/lease.py) that its
holder keeps only while alive (a PostgreSQL advisory lock held by its connection, or a
live PID on one machine). So one worker at a time (a Redis lock) looks at every unacked
mxshift task of its queue every ``interval`` seconds and asks the lease of its mailbox (or
of its folder pairs, for a part of a split pass):

* live: the pass is running: its score is set to now (a heartbeat), so the visibility
  timeout never expires under a live pass, however long it runs;
* dead: a ``running`` pass row whose holder is gone: the task goes back to the queue at
  once (after ``dead_after`` seconds without a heartbeat, so a delivery that has not
  taken its lease yet is left alone);
* free: nobody holds the lease and no row says running (a worker that died between
  taking the task and starting the pass): back on the queue after ``free_after`` seconds.

The visibility timeout stays the safety net for when no worker at all is alive.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

log = logging.getLogger(__name__)

#: kombu's Redis transport keys (kombu.transport.redis.Channel defaults).
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
PASS_TASK, PART_TASK = "mxshift.pass", "mxshift.part"

Action = Literal["heartbeat", "requeue", "wait"]


@dataclass(frozen=True)
class TaskLease:
    """The lease an unacked task's pass needs: a mailbox, or some of its folder pairs."""

    mailbox_id: int
    folders: frozenset[int] | None


def task_lease(raw: bytes | str, queue: str) -> TaskLease | None:
    """The lease of one ``unacked`` hash value (pure): None when it is not an mxshift pass
    task of ``queue`` (another project's queue may share the Redis database)."""
    try:
        message, _exchange, routing_key = json.loads(raw)
        if routing_key != queue:
            return None
        name = message["headers"]["task"]
        if name not in (PASS_TASK, PART_TASK):
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        if name == PART_TASK:
            return TaskLease(int(args[0]), frozenset(int(f) for f in args[4]))
        return TaskLease(int(args[0]), None)
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def decide(state: str, age: float, *, dead_after: float, free_after: float) -> Action:
    """What to do with an unacked task whose lease is in ``state`` and whose score is
    ``age`` seconds old (pure)."""
    if state == "live":
        return "heartbeat"
    if state == "dead" and age >= dead_after:
        return "requeue"
    if state == "free" and age >= free_after:
        return "requeue"
    return "wait"


class LeaseWatcher:
    """Runs :meth:`sweep` every ``interval`` seconds in a daemon thread, in one worker
    of the queue at a time."""

    def __init__(self, *, redis_url: str, queue: str, holder: Callable[[TaskLease], str],
                 restore: Callable[[str], None], interval: float,
                 dead_after: float | None = None, free_after: float | None = None) -> None:
        import redis

        self.client = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.queue, self.holder, self.restore = queue, holder, restore
        self.interval = interval
        self.dead_after = 3 * interval if dead_after is None else dead_after
        self.free_after = max(60.0, 30 * interval) if free_after is None else free_after
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self.stop = threading.Event()
        self.requeued = 0

    def _leader(self) -> bool:
        """One watcher per queue at a time: a Redis key that expires if its holder dies."""
        key, ttl = f"mxshift:lease-watcher:{self.queue}", int(self.interval * 3000) + 1000
        if self.client.set(key, self.me, nx=True, px=ttl):
            return True
        if self.client.get(key) == self.me.encode():
            self.client.pexpire(key, ttl)
            return True
        return False

    def sweep(self, now: float | None = None) -> list[tuple[str, Action]]:
        """One look at every unacked task of the queue; what was done to each."""
        now = time.time() if now is None else now
        done: list[tuple[str, Action]] = []
        scores = dict(self.client.zrange(UNACKED_INDEX, 0, -1, withscores=True))
        for tag, raw in self.client.hgetall(UNACKED).items():
            lease = task_lease(raw, self.queue)
            if lease is None or tag not in scores:
                continue
            state = self.holder(lease)
            action = decide(state, now - scores[tag], dead_after=self.dead_after,
                            free_after=self.free_after)
            name = tag.decode()
            if action == "heartbeat":
                self.client.zadd(UNACKED_INDEX, {tag: now}, xx=True)  # only if still unacked
            elif action == "requeue":
                log.warning("mxshift: requeueing task %s of mailbox %s (lease %s)", name,
                            lease.mailbox_id, state)
                self.restore(name)
                self.requeued += 1
            done.append((name, action))
        return done

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                if self._leader():
                    self.sweep()
            except Exception:  # noqa: BLE001 - a watcher must outlive a Redis or DB hiccup
                log.exception("mxshift: lease watcher round failed")

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="mxshift-lease-watcher", daemon=True)
        thread.start()
        return thread


def kombu_restore(app: Any) -> Callable[[str], None]:
    """Put an unacked message back on its queue the way kombu itself does (front of the
    queue, marked redelivered; atomic against a concurrent ack)."""
    def restore(tag: str) -> None:
        with app.connection_for_write() as conn:
            conn.default_channel.qos.restore_by_tag(tag, leftmost=True)
    return restore

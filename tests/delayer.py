"""Holds each packet a network namespace sends for a fixed time before letting it go: tc netem's delay, in userspace.

Run inside the namespace, next to an iptables rule that hands the packets to
its queue (``-j NFQUEUE --queue-num N --queue-bypass``)::

    ip netns exec NS python tests/delayer.py --queue N --milliseconds 200

It binds the queue over nfnetlink_queue, speaking the netlink protocol with
the standard library alone: the kernel keeps each packet and sends only its
metadata; the delayer gives it its accept verdict ``milliseconds`` after it
arrived. A fixed delay keeps the order of the packets, so one verdict
accepts every packet whose time has come (a batch verdict, for all packet
ids up to the newest due).

What it must never do is blackhole a link:
- while it is not bound (not started yet, or dead) the rule's bypass lets
  packets through undelayed;
- the kernel holds at most ``--max-held`` packets for it; beyond that, or
  when it does not read its socket in time, the queue fails open and
  packets pass undelayed instead of being dropped.

It prints ``ready`` once bound. SIGTERM, SIGINT and the end of the process
that started it release every held packet at once and end it; a summary
goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Iterator

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 0x2
NLA_TYPE_MASK = 0x3FFF

NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3

NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5

NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 0x1
NFQA_CFG_F_GSO = 0x4  # segmentation offload packets whole: nothing is copied, so no need to cut them up
NF_ACCEPT = 1

_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr, host byte order
_NFGEN = struct.Struct("!BBH")  # struct nfgenmsg: family, version, queue number (big-endian)
_ATTRIBUTE = struct.Struct("=HH")  # struct nlattr


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attribute(kind: int, value: bytes) -> bytes:
    size = _ATTRIBUTE.size + len(value)
    return _ATTRIBUTE.pack(size, kind) + value + b"\0" * (_align(size) - size)


def _message(kind: int, flags: int, seq: int, queue: int, attributes: bytes) -> bytes:
    body = _NFGEN.pack(socket.AF_UNSPEC, 0, queue) + attributes
    return _HEADER.pack(_HEADER.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, NLM_F_REQUEST | flags, seq, 0) + body


def bind_message(queue: int, max_held: int, seq: int = 1) -> bytes:
    """Bind ``queue``, copy metadata only, hold at most ``max_held`` packets, fail open; acknowledged."""
    flags = struct.pack("!I", NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO)
    attributes = (
        _attribute(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_UNSPEC))
        + _attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
        + _attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", max_held))
        + _attribute(NFQA_CFG_FLAGS, flags)
        + _attribute(NFQA_CFG_MASK, flags)
    )
    return _message(NFQNL_MSG_CONFIG, NLM_F_ACK, seq, queue, attributes)


def accept_up_to(queue: int, packet_id: int) -> bytes:
    """Accept every packet of ``queue`` up to ``packet_id``, in one verdict."""
    return _message(NFQNL_MSG_VERDICT_BATCH, 0, 0, queue, _attribute(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))


def _messages(datagram: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each netlink message in ``datagram``."""
    offset = 0
    while offset + _HEADER.size <= len(datagram):
        length, kind, _flags, _seq, _pid = _HEADER.unpack_from(datagram, offset)
        if length < _HEADER.size:
            return
        yield kind, datagram[offset + _HEADER.size : offset + length]
        offset += _align(length)


def _attributes(payload: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    offset = _NFGEN.size
    while offset + _ATTRIBUTE.size <= len(payload):
        length, kind = _ATTRIBUTE.unpack_from(payload, offset)
        if length < _ATTRIBUTE.size:
            break
        found[kind & NLA_TYPE_MASK] = payload[offset + _ATTRIBUTE.size : offset + length]
        offset += _align(length)
    return found


def parse(datagram: bytes) -> tuple[list[int], list[int]]:
    """The ids of the packets queued in ``datagram``, and the errors (negative errno; 0 is an acknowledgement) it carries."""
    packets: list[int] = []
    errors: list[int] = []
    for kind, payload in _messages(datagram):
        if kind == NLMSG_ERROR:
            errors.append(struct.unpack_from("=i", payload)[0])
        elif kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            header = _attributes(payload).get(NFQA_PACKET_HDR)
            if header is not None:
                packets.append(struct.unpack_from("!I", header)[0])
    return packets, errors


class Held:
    """Packets in the order they came, each with the time it may leave."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.queue: deque[tuple[float, int]] = deque()
        self.count = 0
        self.latest = 0.0  # the most a verdict came after its time

    def add(self, packet_ids: list[int], now: float) -> None:
        self.queue.extend((now + self.delay, packet_id) for packet_id in packet_ids)
        self.count += len(packet_ids)

    def due(self, now: float) -> int | None:
        """The newest packet whose time has come, after removing it and every one before it; None when none has."""
        newest = None
        while self.queue and self.queue[0][0] <= now:
            at, newest = self.queue.popleft()
            self.latest = max(self.latest, now - at)
        return newest

    def everything(self) -> int | None:
        newest = self.queue[-1][1] if self.queue else None
        self.queue.clear()
        return newest

    def wait(self, now: float, longest: float) -> float:
        return min(longest, max(0.0, self.queue[0][0] - now)) if self.queue else longest


def bind(queue: int, max_held: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)  # an overrun fails open (kernel side); the reader carries on
    sock.bind((0, 0))
    sock.send(bind_message(queue, max_held))
    _, errors = parse(sock.recv(65536))
    if errors != [0]:
        code = -errors[0] if errors else 0
        # EPERM: another process has the queue
        raise OSError(code, f"nfnetlink_queue did not bind queue {queue}: {os.strerror(code) if code else 'no answer'}")
    return sock


def run(queue: int, milliseconds: int, max_held: int) -> None:
    parent = os.getppid()
    sock = bind(queue, max_held)
    stop_r, stop_w = socket.socketpair()
    stop_w.setblocking(False)
    signal.set_wakeup_fd(stop_w.fileno())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    print("ready", flush=True)

    held = Held(milliseconds / 1000)
    refused = 0
    while os.getppid() == parent:
        readable, _, _ = select.select([sock, stop_r], [], [], held.wait(time.monotonic(), 1.0))
        if stop_r in readable:
            break
        if sock in readable:
            while True:
                try:
                    datagram = sock.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                packets, errors = parse(datagram)
                held.add(packets, time.monotonic())
                refused += sum(1 for e in errors if e)
        newest = held.due(time.monotonic())
        if newest is not None:
            sock.send(accept_up_to(queue, newest))
    newest = held.everything()
    if newest is not None:
        sock.send(accept_up_to(queue, newest))
    print(
        f"delayer on queue {queue}: held {held.count} packets {milliseconds} ms, the latest {held.latest * 1000:.0f} ms late; "
        f"{refused} verdicts refused",
        file=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--queue", type=int, required=True, help="the NFQUEUE number the iptables rule sends packets to")
    parser.add_argument("--milliseconds", type=int, required=True, help="how long each packet is held")
    parser.add_argument("--max-held", type=int, default=4096, help="packets held at most; beyond them packets pass undelayed")
    args = parser.parse_args()
    run(args.queue, args.milliseconds, args.max_held)


if __name__ == "__main__":
    main()

"""The topology's delay is real: round trips through a delayed host's link take the delay longer, and healing ends it.

No broker: echo servers in two hosts, round trips timed from the test (root
namespace) and from one host to the other.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.round_trips import measure
from tests.topology import Host, Topology, unsupported

pytestmark = pytest.mark.e2e
ROUND_TRIPS = Path(__file__).with_name("round_trips.py")
PORT = 7007
DELAY = 0.2
#: what scheduling on a busy machine may add to a held packet's time, and what an undelayed round trip may take
SLACK = 0.1


@pytest.fixture
def topology() -> Iterator[Topology]:
    reason = unsupported()
    if reason is not None:
        pytest.skip(f"the delay needs network namespaces: {reason}")
    with Topology(brokers=0, workers=2) as topology:
        servers = [subprocess.Popen([*h.wrapper, sys.executable, str(ROUND_TRIPS), "serve", h.address, str(PORT)],
                                    stdout=subprocess.PIPE, text=True) for h in topology.workers]
        for server in servers:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield topology
    for server in servers:
        server.wait(10)  # killed with everything else in the namespaces
        assert server.stdout is not None
        server.stdout.close()
    assert not topology.leftovers(), topology.leftovers()


def from_test(to: Host) -> tuple[float, list[float]]:
    return measure(to.address, PORT, 5)


def between(source: Host, to: Host) -> tuple[float, list[float]]:
    done = subprocess.run([*source.wrapper, sys.executable, str(ROUND_TRIPS), "measure", to.address, str(PORT), "5"],
                          capture_output=True, text=True, check=True, timeout=60)
    times = json.loads(done.stdout)
    return times["connect"], times["round_trips"]


def queue_rules(host: Host) -> list[str]:
    """The iptables rules handing the host's packets to a delayer."""
    rules = subprocess.run([*host.wrapper, "iptables", "-t", "mangle", "-S"], capture_output=True, text=True, check=True).stdout
    return [line for line in rules.splitlines() if "NFQUEUE" in line]


def test_delay_holds_each_packet_a_host_sends_and_heal_ends_it(topology: Topology) -> None:
    a, b = topology.workers
    connect, trips = from_test(a)
    assert connect < SLACK and max(trips) < SLACK, (connect, trips)

    topology.delay([a], int(DELAY * 1000))
    connect, trips = from_test(a)
    assert DELAY <= connect < DELAY + SLACK, connect  # the SYN goes straight in, the SYN-ACK is held
    assert min(trips) >= DELAY and statistics.median(trips) < DELAY + SLACK, trips
    # rewriting a delayed host's other faults loses none of what it holds (a retransmission would add a second)
    measured: list[float] = []
    measuring = threading.Thread(target=lambda: measured.extend(from_test(a)[1]))
    measuring.start()
    while measuring.is_alive():
        topology.lossy([a], 0.0)
    assert len(measured) == 5 and max(measured) < DELAY + SLACK, measured
    # undelayed host: only a's answers are held; both delayed: each way is
    connect, trips = between(b, a)
    assert min(trips) >= DELAY and statistics.median(trips) < DELAY + SLACK, trips
    topology.delay([b], int(DELAY * 1000))
    connect, both = between(b, a)
    assert 2 * DELAY <= connect < 2 * DELAY + SLACK, connect
    assert min(both) >= 2 * DELAY and statistics.median(both) < 2 * DELAY + SLACK, both
    connect, trips = from_test(a)
    assert min(trips) >= DELAY and statistics.median(trips) < DELAY + SLACK, trips
    print(f"round trips with {DELAY * 1000:.0f} ms delay: from the test {min(trips) * 1000:.0f}–{max(trips) * 1000:.0f} ms, "
          f"between two delayed hosts {min(both) * 1000:.0f}–{max(both) * 1000:.0f} ms")

    # a dead delayer lets packets through undelayed, never blackholes the link
    assert a.delayer is not None
    os.kill(a.delayer.pid, signal.SIGKILL)
    a.delayer.wait(10)
    connect, trips = from_test(a)
    assert connect < SLACK and max(trips) < SLACK, (connect, trips)

    topology.heal()
    connect, trips = between(b, a)
    assert connect < SLACK and max(trips) < SLACK, (connect, trips)
    assert queue_rules(a) == [] and queue_rules(b) == []
    assert a.delayer is None and b.delayer is None
    assert len(a.pids()) == len(b.pids()) == 1, "a delayer outlived the delay"  # the echo server alone

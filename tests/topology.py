"""Hosts of their own for brokers and workers: Linux network namespaces on a private bridge, and the faults between them.

Each host is a network namespace with one address on a bridge that the
topology makes and no other link: traffic goes only between the hosts and
the test, which reaches each of them from the root namespace through the
bridge's own address. Nothing is routed or forwarded off the bridge, so no
host is reachable from outside the machine.

Faults live inside the hosts' namespaces. A cut drops every packet between
two hosts silently, both ways (no reset, no ICMP: the connections simply
stop moving bytes, as when a cable or a switch fails); loss drops a share of
a host's packets at random: both are nftables rules. Delay holds every
packet a host sends for a fixed time: an iptables NFQUEUE rule hands them
to a delayer process in the host's namespace (tests/delayer.py), which lets
each go when its time has come. It needs neither the kernel's ``sch_netem``
(tc netem) nor nftables' ``queue`` statement, which kernels may leave out,
only nfnetlink_queue and iptables' NFQUEUE target.

Teardown stops the delayers, kills every process left in the namespaces,
then deletes them and the bridge. A topology left behind by a run that was
killed is removed by the next one (names carry the creating process's id),
its delayers with the other processes in its namespaces.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: namespaces are named ``bf-<pid>-<tag>-<host>``; interfaces ``bf<tag><host>`` (at most 15 characters)
_NAME = re.compile(r"^bf-(\d+)-([0-9a-f]{4})-")

_DELAYER = Path(__file__).with_name("delayer.py")
#: every packet a host sends over its link, after the faults' output chain, to the delayer's queue; through undelayed while none listens
_DELAY_RULE = ("POSTROUTING", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass")


def unsupported() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI and these machines run as root)"
    for tool in ("ip", "nft", "iptables"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (make system-deps installs iproute2, nftables and iptables)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"'ip netns' does not work here: {probe.stderr.strip()}"
    return None


def _run(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), input=stdin, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@dataclass
class Host:
    """One namespace with one address on the topology's bridge."""

    name: str
    namespace: str
    address: str
    #: packets to these addresses are dropped, both ways (the other host drops its side too)
    cut_from: set[str] = field(default_factory=set)
    #: share of packets dropped at random, in and out
    loss: float = 0.0
    #: the process holding the packets it sends, while it has a delay (tests/delayer.py)
    delayer: subprocess.Popen[str] | None = None

    @property
    def wrapper(self) -> tuple[str, ...]:
        """What a process is started under to live in this host."""
        return ("ip", "netns", "exec", self.namespace)

    def pids(self) -> list[int]:
        done = _run("ip", "netns", "pids", self.namespace, check=False)
        return [int(p) for p in done.stdout.split()]


class Topology:
    """``brokers`` and ``workers`` hosts on a private bridge; use as a context manager (teardown even when a test fails)."""

    def __init__(self, brokers: int, workers: int) -> None:
        reason = unsupported()
        if reason is not None:
            raise RuntimeError(reason)
        _sweep_orphans()
        self.tag = f"{random.getrandbits(16):04x}"
        self.bridge = f"bf{self.tag}br"
        self.network = _free_network()
        hosts = list(self.network.hosts())
        self.gateway = str(hosts[0])
        self.brokers = [self._host(f"b{i + 1}", str(hosts[10 + i])) for i in range(brokers)]
        self.workers = [self._host(f"w{i + 1}", str(hosts[20 + i])) for i in range(workers)]

    def _host(self, name: str, address: str) -> Host:
        return Host(name, f"bf-{os.getpid()}-{self.tag}-{name}", address)

    @property
    def hosts(self) -> list[Host]:
        return [*self.brokers, *self.workers]

    def __enter__(self) -> Topology:
        try:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for host in self.hosts:
                outside = self._outside(host)
                _run("ip", "netns", "add", host.namespace)
                _run("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
                _run("ip", "link", "set", outside, "master", self.bridge, "up")
                inside = ("ip", "netns", "exec", host.namespace)
                _run(*inside, "ip", "addr", "add", f"{host.address}/{self.network.prefixlen}", "dev", "eth0")
                _run(*inside, "ip", "link", "set", "eth0", "up")
                _run(*inside, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def _outside(self, host: Host) -> str:
        """The root namespace's end of ``host``'s link (on the bridge)."""
        return f"bf{self.tag}{host.name}"

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self, timeout: float = 15.0) -> None:
        """Stop the delayers, kill what still runs in the hosts, delete them and the bridge; wait until the kernel has let them go."""
        for host in self.hosts:
            self._undelay(host)
        for host in self.hosts:
            for pid in host.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        while any(host.pids() for host in self.hosts) and time.monotonic() < deadline:
            time.sleep(0.1)
        for host in self.hosts:
            _run("ip", "netns", "del", host.namespace, check=False)
            # the pair goes with its namespace only once the kernel has let that go (sockets closing): remove it now
            _run("ip", "link", "del", self._outside(host), check=False)
        _run("ip", "link", "del", self.bridge, check=False)
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)  # a namespace's links go when its last reference does

    def leftovers(self) -> list[str]:
        """Namespaces and links of this topology still present (none after :meth:`close`)."""
        namespaces = _run("ip", "netns", "list").stdout
        links = _run("ip", "-o", "link", "show").stdout
        found = [h.namespace for h in self.hosts if h.namespace in namespaces]
        return found + sorted(set(re.findall(rf"bf{self.tag}\w+", links)))

    # -- faults ------------------------------------------------------------------
    def cut(self, group: Iterable[Host], others: Iterable[Host]) -> None:
        """Every packet between a host of ``group`` and a host of ``others`` is dropped, both ways, silently."""
        group, others = list(group), list(others)
        for a in group:
            for b in others:
                a.cut_from.add(b.address)
                b.cut_from.add(a.address)
        for host in {h.namespace: h for h in [*group, *others]}.values():
            self._apply(host)

    def cut_from_test(self, hosts: Iterable[Host]) -> None:
        """Every packet between these hosts and the root namespace (the test, its clients and producers) dropped, both ways."""
        for host in hosts:
            host.cut_from.add(self.gateway)
            self._apply(host)

    def heal(self) -> None:
        """Every cut, loss and delay removed."""
        for host in self.hosts:
            self._undelay(host)
            host.cut_from.clear()
            host.loss = 0.0
            self._apply(host)

    def lossy(self, hosts: Iterable[Host], loss: float) -> None:
        """``loss`` (0..1) of every packet into and out of each host dropped at random."""
        for host in hosts:
            host.loss = loss
            self._apply(host)

    def delay(self, hosts: Iterable[Host], milliseconds: int) -> None:
        """Every packet each host sends over its link held ``milliseconds`` before it leaves.

        The delay is on the host's end of its link, outgoing, where tc netem
        would put it: a round trip between a delayed host and the test or an
        undelayed host takes ``milliseconds`` longer, one between two delayed
        hosts twice that. Packets keep their order; lost ones (:meth:`lossy`)
        are dropped before they are held. A delayer that dies, or falls a
        queue's length behind, lets packets through undelayed rather than
        dropping them. A second call replaces a host's delay.
        """
        for host in hosts:
            self._undelay(host)
            command = [*host.wrapper, sys.executable, str(_DELAYER), "--queue", "0", "--milliseconds", str(milliseconds)]
            host.delayer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            assert host.delayer.stdout is not None
            started, _, _ = select.select([host.delayer.stdout], [], [], 15)
            if not started or host.delayer.stdout.readline().strip() != "ready":
                self._undelay(host)
                raise RuntimeError(f"the delayer in {host.name} did not start (see its stderr above)")
            _run(*host.wrapper, "iptables", "-w", "-t", "mangle", "-A", *_DELAY_RULE)

    def _undelay(self, host: Host) -> None:
        """The host's delay removed: no more packets held, the delayer told to let go of those it holds, and ended."""
        if host.delayer is None:
            return
        _run(*host.wrapper, "iptables", "-w", "-t", "mangle", "-D", *_DELAY_RULE, check=False)
        host.delayer.terminate()
        try:
            host.delayer.wait(10)
        except subprocess.TimeoutExpired:
            host.delayer.kill()
            host.delayer.wait()
        if host.delayer.stdout is not None:
            host.delayer.stdout.close()
        host.delayer = None

    def _apply(self, host: Host) -> None:
        """The host's cuts and loss as its nftables rules, replaced in one transaction.

        The chains stay and only their rules change: a netfilter hook that
        goes away makes the kernel drop every packet queued in the namespace,
        which would be the packets a delayer holds.
        """
        rules = []
        if host.cut_from:
            rules.append(f"ip daddr {{ {', '.join(sorted(host.cut_from))} }} drop")
        if host.loss > 0:
            rules.append(f"numgen random mod 10000 < {round(host.loss * 10000)} drop")
        incoming = [r.replace("daddr", "saddr") for r in rules]
        script = (
            "table inet borderflow_faults {\n"
            "  chain out { type filter hook output priority 0; policy accept; }\n"
            "  chain in { type filter hook input priority 0; policy accept; }\n"
            "}\n"
            "flush table inet borderflow_faults\n"
            + "".join(f"add rule inet borderflow_faults out {r}\n" for r in rules)
            + "".join(f"add rule inet borderflow_faults in {r}\n" for r in incoming)
        )
        _run(*host.wrapper, "nft", "-f", "-", stdin=script)


def _free_network() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no address or route of this machine is in."""
    used = _run("ip", "-4", "route", "show", "table", "all").stdout + _run("ip", "-4", "addr").stdout
    taken = [ipaddress.ip_network(m, strict=False) for m in re.findall(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", used)]
    while True:
        candidate = ipaddress.ip_network(f"10.{random.randint(128, 254)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(net) for net in taken if net.prefixlen > 0):
            return candidate


def _sweep_orphans() -> None:
    """Namespaces and bridges of topologies whose test process no longer runs."""
    for line in _run("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        found = _NAME.match(name)
        if found is None or _alive(int(found.group(1))):
            continue
        for pid in Host(name, name, "").pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _run("ip", "netns", "del", name, check=False)
        _run("ip", "link", "del", f"bf{found.group(2)}br", check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""A multi-flow capture made from the lab's committed samples, without root.

``mergecap`` (a real tool) merges three single-flow lab captures, all taken
at the client in the same topology, in time order:

1. ``server-idle-abort``: the server resets after 3 s of silence;
2. ``client-read-timeout-abort``: the client's 3 s read timeout aborts;
3. ``graceful-close``: a FIN close, no reset.

What each flow is (ports, addresses, who reset, after which configured
timeout, the RST's TTL) comes from the lab's labels and the capture itself
read by tshark, never from rstscope, so the plot and report tests keep
oracles independent of the code they check.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, sample_labels

MIX = ("server-idle-abort", "client-read-timeout-abort", "graceful-close")


@dataclass(frozen=True)
class SampleFlow:
    client: str
    client_port: int
    server: str
    server_port: int
    rst_from: str | None  # "client", "server", or None for a flow without a reset
    timeout_s: float | None  # the scenario's configured timeout before the reset
    rst_ttl: int | None


@dataclass(frozen=True)
class SampleMix:
    path: Path
    flows: tuple[SampleFlow, ...]  # in the order they end

    @property
    def client_ports(self) -> tuple[int, ...]:
        return tuple(f.client_port for f in self.flows)

    @property
    def aborted(self) -> tuple[SampleFlow, ...]:
        return tuple(f for f in self.flows if f.rst_from)

    def flow(self, rst_from: str) -> SampleFlow:
        return next(f for f in self.flows if f.rst_from == rst_from)


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed")
    return exe


def _first_syn(pcap: Path) -> tuple[str, int, str, int]:
    out = subprocess.run(
        [_tool("tshark"), "-r", str(pcap), "-n", "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0",
         "-T", "fields", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport"],
        capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1]), out[2], int(out[3])


def sample_flow(name: str) -> SampleFlow:
    pcap = SAMPLES / f"{name}.client.pcap"
    client, cport, server, sport = _first_syn(pcap)
    labels = sample_labels(pcap)
    if not labels:
        return SampleFlow(client, cport, server, sport, None, None, None)
    (lab,) = labels
    rst_from = "client" if lab["src"] == client else "server"
    return SampleFlow(client, cport, server, sport, rst_from, lab["timeout_s"], lab["ttl"])


def mixed_capture(out: Path, names: tuple[str, ...] = MIX) -> SampleMix:
    """Merge the client-side captures of ``names`` (chronologically) into ``out``."""
    subprocess.run([_tool("mergecap"), "-F", "pcap", "-w", str(out),
                    *(str(SAMPLES / f"{n}.client.pcap") for n in names)], check=True)
    return SampleMix(out, tuple(sample_flow(n) for n in names))


def single_capture(name: str) -> SampleMix:
    """One sample as it is (client side)."""
    return SampleMix(SAMPLES / f"{name}.client.pcap", (sample_flow(name),))

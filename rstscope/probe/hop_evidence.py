"""``analyze --probe RESULT.json``: the measured hop as evidence for matching verdicts.

A passive verdict says who sent a RST from TTLs and timing, and often cannot
say *which* box (a firewall and a load balancer look alike from the wire).  A
probe run from the client side measured where the reset is made.  For every
reset on the probed target (address and port), this module compares the two:

* the probe's **sender** (a box on the path, or the endpoint's own stack)
  against the verdict's ``sender``;
* when the capture was taken at the client, the probe's **hop** against the
  verdict's ``sender_hops``: a box at probe hop *j* sends packets that cross
  *j - 1* routers to the client (the endpoint: ``endpoint_hops - 1``).

Agreement adds evidence with weight ``+AGREE_WEIGHT`` and raises confidence
by that much log-odds; when the verdict listed the probe's kind of box as its
alternative, the probe settles the origin (the box that owns the target
address is a load balancer, a transit box a firewall).  Disagreement adds the
same evidence with a negative weight and lowers confidence: a probe never
raises a verdict it contradicts.  A probe that found no reset (silent drop,
no reset, unreachable) adds context only (weight 0).
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rstscope.errors import InputMissingError, UsageError
from rstscope.probe.model import ProbeResult, result_from_dict

#: Log-odds a direct measurement of the resetting hop adds (or removes).
AGREE_WEIGHT = 2.0
#: Never claim certainty: the probe ran at another time than the capture.
MAX_CONFIDENCE = 0.97
_ENDPOINT_OUTCOMES = ("endpoint-reset", "endpoint-unknown-connection")


def load_probes(paths: Iterable[str]) -> list[ProbeResult]:
    """Read ``rstscope probe --format json`` outputs (one line errors on bad input)."""
    out = []
    for p in paths:
        try:
            doc = json.loads(Path(p).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputMissingError(f"--probe {p}: no such file") from None
        except OSError as exc:
            raise InputMissingError(f"--probe {p}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"--probe {p}: not JSON ({exc.msg})") from None
        try:
            out.append(result_from_dict(doc))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"--probe {p}: not an rstscope probe result ({exc})") from None
    return out


def _norm(addr: str) -> str:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _matching(reset: Mapping[str, Any], probes: list[ProbeResult]) -> ProbeResult | None:
    src, dst = _norm(str(reset.get("src"))), _norm(str(reset.get("dst")))
    for p in probes:
        a = _norm(p.address)
        if (src == a and reset.get("sport") == p.port) or (dst == a and reset.get("dport") == p.port):
            return p
    return None


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def judge(reset: Mapping[str, Any], probe: ProbeResult, vantage: str | None) -> dict[str, Any]:
    """What the probe says about one reset: the evidence item and the refined fields."""
    a = probe.answer
    before = float(reset.get("confidence") or 0.0)
    claim: str | None
    if a.outcome == "middlebox-reset":
        claim, hop = "middlebox", a.reset_hop
        where = "an on-path " if a.on_path else "a "
        value = f"{where}{a.box} at hop {hop}" + (f" ({a.reset_addr})" if a.reset_addr else "")
    elif a.outcome in _ENDPOINT_OUTCOMES:
        claim, hop = "server-endpoint", probe.endpoint_hops or a.reset_hop
        value = f"the endpoint's own stack at hop {hop}"
    else:
        claim, hop = None, None
        value = a.outcome
    sender = reset.get("sender")
    out: dict[str, Any] = {"outcome": a.outcome, "reset_hop": a.reset_hop, "box": a.box,
                           "verdict": a.verdict, "agrees": None}
    if claim is None:
        ev = {"name": "probe", "value": value, "expected": "a RST drawn by the probe",
              "weight": 0.0}
        return {"probe": out, "evidence": ev, "confidence": before, "origin": reset.get("origin")}
    kind_ok = sender == claim
    hops_ok = True
    expected_hops = None if hop is None else hop - 1
    if vantage == "client" and reset.get("sender_hops") is not None and expected_hops is not None:
        hops_ok = int(reset["sender_hops"]) == expected_hops
    agrees = kind_ok and hops_ok
    weight = AGREE_WEIGHT if agrees else -AGREE_WEIGHT
    conf = _sigmoid(_logit(before) + weight)
    conf = round(min(conf, MAX_CONFIDENCE) if agrees else min(conf, before), 3)
    origin = reset.get("origin")
    if agrees and claim == "middlebox" and a.box in ("firewall", "load-balancer"):
        alts = [str(x[0]) for x in reset.get("alternatives") or []]
        if a.box != origin and a.box in alts:
            origin = a.box
    out["agrees"] = agrees
    ev = {"name": "probe", "value": value,
          "expected": f"{sender}" + (f", {reset.get('sender_hops')} hops from the capture"
                                     if reset.get("sender_hops") is not None else ""),
          "weight": weight}
    return {"probe": out, "evidence": ev, "confidence": conf, "origin": origin}


def apply_probes(doc: dict[str, Any], probes: list[ProbeResult]) -> int:
    """Refine ``doc`` (an analyze document) in place; returns how many resets matched."""
    vantage_of = {f.get("flow_id"): f.get("vantage") for f in doc.get("flows", [])}
    matched = 0
    for r in doc.get("resets", []):
        p = _matching(r, probes)
        if p is None:
            continue
        matched += 1
        j = judge(r, p, vantage_of.get(r.get("flow_id")))
        r["evidence"] = [*r.get("evidence", []), j["evidence"]]
        if j["origin"] != r.get("origin"):
            r["alternatives"] = [[str(r.get("origin")), "the passive verdict; the probe "
                                  "measured the other kind of box"]] + [
                alt for alt in r.get("alternatives", []) if alt[0] != j["origin"]]
        r["confidence"] = j["confidence"]
        r["origin"] = j["origin"]
        r["probe"] = j["probe"]
    by_origin = doc.get("summary", {}).get("resets_by_origin")
    if matched and isinstance(by_origin, dict):
        # The probe may have settled an origin: keep the summary's counts true.
        for k in by_origin:
            by_origin[k] = 0
        for r in doc.get("resets", []):
            by_origin[r.get("origin")] = by_origin.get(r.get("origin"), 0) + 1
    return matched

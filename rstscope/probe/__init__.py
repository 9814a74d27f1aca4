"""Active location of the resetting hop: ``rstscope probe`` (see docs/probe.md).

The trigger segment is re-sent with growing IP TTLs (CenTrace, tracebox):
probes that die before the box come back as ICMP time-exceeded from the
routers on the way, and the first probe that reaches the box draws its RST.
"""

from rstscope.probe.model import Answer, Hop, ProbeResult, result_from_dict

__all__ = ["Answer", "Hop", "ProbeResult", "result_from_dict"]

"""The tshark-fields engine must yield exactly the facts the pyshark engine yields."""

from __future__ import annotations

import pytest

from rstscope.enrich import enrich_capture
from rstscope.enrich.fields import dissect_fields
from rstscope.enrich.shark import TLS_FILTER, build_contexts


@pytest.mark.parametrize("with_keys", [True, False], ids=["keylog", "no-keylog"])
def test_engines_agree(recording, with_keys, enriched_keys, enriched_opaque):
    keylog = recording.keylog if with_keys else None
    by_pyshark = enriched_keys if with_keys else enriched_opaque
    assert by_pyshark.engine == "pyshark"  # auto picks pyshark for a small cut
    by_fields = enrich_capture(recording.pcap, keylog=keylog, engine="tshark-fields")
    assert by_fields.engine == "tshark-fields"
    assert by_fields.flows == by_pyshark.flows
    assert by_fields.packets_dissected == by_pyshark.packets_dissected > 0


def test_fields_engine_sees_http2(recording):
    ctx = build_contexts(dissect_fields(recording.pcap, keylog=recording.keylog,
                                        display_filter=TLS_FILTER))
    goaways = [f for flow in ctx.values() for f in flow.http2 if f.type == "GOAWAY"]
    assert [(g.error_name, g.sport) for g in goaways] == [("NO_ERROR", recording.bench.port)]

import shutil, time
def test_make(tls_bench):
    c = tls_bench.client()
    sid = c.get("/slow")
    ev = c.read_until("StreamEnded", 5)
    assert ev is not None
    ev = c.read_until("ConnectionTerminated", 5)   # GOAWAY after idle
    assert ev is not None
    time.sleep(0.3)
    c.ping_after_close()
    time.sleep(0.3)
    c.abort()
    c2 = tls_bench.client()
    sid = c2.get("/ok"); c2.read_until("StreamEnded", 5)
    c2.close_notify_then_abort()
    tls_bench.stop_capture()
    shutil.copy(tls_bench.pcap, "/tmp/exp/a.pcap"); shutil.copy(tls_bench.keylog, "/tmp/exp/a.keys")

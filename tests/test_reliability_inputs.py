"""Property tests (hypothesis) over zoo's doors for outside input: the manifest loader, the sample loader
(CSV / TSV / JSONL / .npz / image folder) and the Hub's model-info normaliser. Every generated input either
loads (and what loaded is stored and read back, or described) or is refused with zoo's own error and a
message; no other exception escapes. The generators and checks are tests/reliability.py's, shared with
benchmarks/bench_reliability.py, which runs many more examples (ZOO_FUZZ_EXAMPLES sets the count here)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from reliability import check_hub, check_manifest, check_sample, hub_documents, manifest_files, sample_inputs

from zoo.registry import Registry

EXAMPLES = int(os.environ.get("ZOO_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])


@pytest.fixture(scope="module")
def fuzz_registry(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-db")
    with Registry(db=folder / "fuzz.db", catalog=folder / "no-catalog.db", create=True) as reg:
        yield reg


def test_manifest_loader_loads_or_refuses_every_input(fuzz_registry):
    outcomes = []

    @FUZZ
    @given(manifest_files())
    def one(case):
        suffix, data = case
        with tempfile.TemporaryDirectory() as d:
            outcomes.append(check_manifest(Path(d), suffix, data, fuzz_registry))

    one()
    assert {"loaded", "refused"} <= set(outcomes), outcomes  # the generator reaches both sides


def test_sample_loader_loads_or_refuses_every_input():
    outcomes = []

    @FUZZ
    @given(sample_inputs())
    def one(spec):
        with tempfile.TemporaryDirectory() as d:
            outcomes.append(check_sample(Path(d), spec))

    one()
    assert {"loaded", "refused"} <= set(outcomes), outcomes


def test_hub_normaliser_maps_or_refuses_every_document(fuzz_registry):
    outcomes = []

    @FUZZ
    @given(hub_documents())
    def one(case):
        doc, readme = case
        outcomes.append(check_hub(doc, readme, fuzz_registry))

    one()
    assert {"loaded", "refused"} <= set(outcomes), outcomes

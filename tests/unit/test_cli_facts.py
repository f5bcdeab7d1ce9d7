"""The plain numbers the command line shows without importing torch agree with what torch measures."""

from __future__ import annotations

import pytest
from deploylab.services.modelzoo import parity, parity_limits
from deploylab.services.modelzoo.catalog import CATALOG
from deploylab.services.modelzoo.counted import COUNTED_GMACS
from deploylab.services.modelzoo.facts import measure_facts

VARIANTS = [(spec, variant) for spec in CATALOG.values() for variant in spec.variant_names]


def test_counted_gmacs_cover_exactly_the_catalog_variants() -> None:
    assert set(COUNTED_GMACS) == {spec.triton_name(variant) for spec, variant in VARIANTS}


@pytest.mark.parametrize(("spec", "variant"), VARIANTS, ids=lambda v: getattr(v, "name", v))
def test_counted_gmacs_are_what_torch_counts_rounded_as_a_manifest_records_them(spec, variant) -> None:
    facts = measure_facts(spec, variant)
    assert COUNTED_GMACS[spec.triton_name(variant)] == round(facts.gmacs, 4)
    assert spec.variant(variant).expected_params == facts.params  # the listing's params come from here


def test_parity_limits_shown_in_help_are_the_ones_parity_applies() -> None:
    for name in ("RTOL", "ATOL", "MAX_RTOL", "MAX_ATOL"):
        assert getattr(parity_limits, name) == getattr(parity, name), name

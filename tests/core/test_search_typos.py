"""Search that forgives typos (core/services/catalogue/fuzzy.py), on both databases:
pg_trgm on PostgreSQL, the same measure in Python on SQLite."""

from __future__ import annotations

import pytest

from core.services.catalogue import fuzzy
from tests.conftest import is_postgres_run
from tests.factories import make_product


@pytest.fixture
def games(session):
    return {
        "emberwake": make_product(session, slug="typo-emberwake", title="Emberwake"),
        "harbor": make_product(session, slug="typo-harbor", title="Harbor Lights: Tidebound"),
        "starfall": make_product(session, slug="typo-starfall", title="Starfall Odyssey"),
        "retired": make_product(
            session, slug="typo-embers", title="Emberwake Classic", active=False
        ),
    }


def test_a_misspelt_title_is_found(session, games):
    result = fuzzy.search_forgiving(session=session, query="embrwake")
    assert [hit.slug for hit in result.page.items] == ["typo-emberwake"]
    assert result.similar_to == "embrwake"
    assert result.page.total == 1


def test_a_misspelt_word_inside_a_longer_title(session, games):
    result = fuzzy.search_forgiving(session=session, query="tidebond")
    assert [hit.slug for hit in result.page.items] == ["typo-harbor"]


def test_words_that_match_are_not_second_guessed(session, games):
    result = fuzzy.search_forgiving(session=session, query="starf")
    assert [hit.slug for hit in result.page.items] == ["typo-starfall"]
    assert result.similar_to is None


def test_nothing_alike_stays_empty_and_filters_still_apply(session, games):
    assert fuzzy.search_forgiving(session=session, query="qzxv").page.items == []
    filtered = fuzzy.search_forgiving(session=session, query="embrwake", platform="Xbox")
    assert filtered.page.items == []


def test_suggestions_prefix_first_then_similar(session, games):
    assert fuzzy.suggest_titles(session=session, query="harb") == [
        ("typo-harbor", "Harbor Lights: Tidebound")
    ]
    assert fuzzy.suggest_titles(session=session, query="starfal odysey")[0] == (
        "typo-starfall",
        "Starfall Odyssey",
    )
    assert fuzzy.suggest_titles(session=session, query="  ") == []


def test_the_python_measure_matches_pg_trgm_on_the_examples():
    assert fuzzy.word_similarity("embrwake", "Emberwake") == pytest.approx(7 / 12)
    assert fuzzy.word_similarity("tidebond", "Harbor Lights: Tidebound") > fuzzy.MIN_SIMILARITY
    assert fuzzy.word_similarity("qzxv", "Emberwake") == 0.0


@pytest.mark.skipif(not is_postgres_run(), reason="pg_trgm is PostgreSQL's")
def test_postgresql_uses_pg_trgm(session):
    assert fuzzy.pg_trgm_schema(session) is not None

"""The catalogue forgives typos, and the header suggests titles as the shopper types."""

from __future__ import annotations

from tests.factories import make_product
from tests.support.states import call, state_for
from web.state.catalogue import CatalogueState
from web.state.search import SuggestState


def test_a_misspelt_search_shows_similar_titles(session):
    make_product(session, slug="state-emberwake", title="Emberwake")
    state = state_for(CatalogueState, "/games?q=embrwake")
    call(state.load)
    assert [card["slug"] for card in state.results] == ["state-emberwake"]
    assert state.similar_to == "embrwake" and state.error == ""
    exact = state_for(CatalogueState, "/games?q=emberw")
    call(exact.load)
    assert exact.similar_to == "" and [c["slug"] for c in exact.results] == ["state-emberwake"]


def test_suggestions_as_the_shopper_types(session):
    make_product(session, slug="state-tidebound", title="Tidebound Saga")
    state = state_for(SuggestState, "/")
    call(state.suggest, "tideb")
    assert state.suggestions == ["Tidebound Saga"]
    call(state.suggest, "tidebnd saga")
    assert state.suggestions == ["Tidebound Saga"]
    call(state.suggest, "t")
    assert state.suggestions == []

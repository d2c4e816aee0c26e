"""An analysis that cannot be estimated on the data at hand says why, in a note, and returns."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.disclosure import Note, Outcome, check_output, load_output, save_output
from analysis.stage import AnalysisOutputs, NotEstimable, not_estimable_output, records_not_estimable
from ig_policies.errors import InputError
from ig_policies.policy import OutputRules

RULES = OutputRules()  # the demo rules: minimum cell count 10


def _note(reason: str) -> Note:
    return Note(reasons=pd.DataFrame({"part": ["the model"], "reason": [reason]}), source="s", title="t")


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("only 30 LSOAs for 16 parameters", Outcome.PASS),
        ("E01006512 and 2.5% are not counts", Outcome.PASS),  # a code and a decimal are not whole numbers
        ("only 7 clients started a job", Outcome.REVIEW),  # could count a few people
        ("client P0123456789abcdef0123 has no record", Outcome.FAIL),  # a pseudonym
    ],
)
def test_a_note_passes_unless_it_quotes_a_small_number_or_an_identifier(
    reason: str, outcome: Outcome
) -> None:
    report = check_output(_note(reason), RULES)
    assert report.outcome is outcome, report.to_text()
    if outcome is not Outcome.FAIL:
        assert list(report.protected.columns) == ["part", "reason"]


def test_a_note_saves_and_loads_and_must_say_something(tmp_path) -> None:
    name, note = not_estimable_output(
        "area_profile", "reference/x", [NotEstimable("too few LSOAs", "the model")]
    )
    assert name == "area-profile-not-estimable"
    assert note.description == "The model: not estimable here, because too few LSOAs."
    loaded = load_output(save_output(note, tmp_path / "note"))
    assert isinstance(loaded, Note) and loaded.reasons.equals(note.reasons)
    with pytest.raises(InputError):
        Note(reasons=pd.DataFrame({"part": ["x"], "reason": [" "]}), source="s", title="t")


@pytest.mark.usefixtures("master_secret_env")
def test_a_whole_analysis_that_raises_not_estimable_records_its_note_and_returns(workspace) -> None:
    from ig_policies.demo import DEMO_USERS, demo_engine

    @records_not_estimable("concordance", "analysis/clients")
    def run_small(
        workspace, engine, actor, justification: str = "Why it could not be estimated."
    ) -> AnalysisOutputs:
        raise NotEstimable("fewer linked clients than the minimum cell count")

    result = run_small(workspace, demo_engine(workspace), DEMO_USERS["researcher"])
    assert [(n, s) for n, _, s in result.requests] == [("concordance-not-estimable", "pending")]
    assert result.sentences == (
        "The whole analysis: not estimable here, because fewer linked clients than the minimum cell count.",
    )
    table = pd.read_csv(result.pending[0] / "preview" / "concordance-not-estimable.csv")
    assert table.to_dict("records") == [
        {
            "part": "the whole analysis",
            "reason": "not estimable here, because fewer linked clients than the minimum cell count",
        }
    ]

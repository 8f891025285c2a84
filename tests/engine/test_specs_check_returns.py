"""specs_check on what a read tool returns: records of the table whose key and columns they carry."""

from __future__ import annotations

import msgspec

from scaleenv._model.specs_check import validate_domain
from scaleenv._store.specs import DomainSpec

from tests.pipeline.transcript import job_seeking_design as design


def _domain(tools: list[dict]) -> DomainSpec:
    return msgspec.convert({"name": "job_seeking", "description": "d", "tables": design.TABLES_ROUND_1["tables"],
                            "tools": tools}, DomainSpec)


def _lister(**changes: object) -> dict:
    tool = next(t for t in design.APPLICATIONS_GROUP["tools"] if t["name"] == "list_candidate_applications")
    return {**tool, **changes}


def test_records_carrying_another_tables_key_are_that_other_tables_records() -> None:
    # It reads candidates first, and an application carries its candidate's id: still application records.
    assert _lister()["reads"] == ["candidates", "applications"]
    assert validate_domain(_domain([_lister()])) == []


def test_a_column_no_table_has_is_still_reported_against_the_first_table() -> None:
    returns = [*_lister()["returns"], {"name": "total", "type": "int"}]
    problems = validate_domain(_domain([_lister(returns=returns)]))
    assert problems == ["tool 'list_candidate_applications' returns ['application_id', 'cover_note', 'posting_id', "
                        "'status', 'total'] of candidates records, but table 'candidates' has no such column(s)"]

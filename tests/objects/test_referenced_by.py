"""`referenced_by` reads only the specs whose text names the object, and finds the same objects
as reading all of them; `describe` and `delete` agree on what blocks a delete."""

from __future__ import annotations

from datetime import UTC, datetime

from campctl.engine.catalog import referenced_by, references
from campctl.models import Kind
from campctl.store import objects as object_store
from campctl.store.db import open_state

AT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def _insert(db, kind: str, name: str, spec: dict) -> None:
    object_store.insert_object(db, object_store.NewVersion(kind, name, 1, spec), status=None,
                               now=AT)


def _by_reading_all(db, kind: Kind, name: str) -> list[str]:
    return [f"{o.kind.lower()}/{o.name}" for o in object_store.all_records(db)
            if (o.kind, o.name) != (kind.value, name) and references(o.spec, kind, name)]


def test_only_specs_that_name_the_object_are_parsed_and_the_answer_is_the_same(state):
    db = open_state(state, create=True)
    with db.atomic():
        _insert(db, "Segment", "news", {"match": "all", "rules": []})
        _insert(db, "Segment", "news-2", {"match": "all", "rules": []})
        # refers to segment "news" (in an audience list) and names "news" elsewhere as text
        _insert(db, "Campaign", "a", {"audience": {"any": [{"segment": "news"}]},
                                      "message": {"subject": "news"}})
        _insert(db, "Campaign", "b", {"audience": {"segment": "news-2"}})  # a longer name only
        _insert(db, "Campaign", "c", {"message": {"subject": "news", "body": "news"}})
        _insert(db, "Plan", "p", {"stages": [{"campaign": "a"}, {"campaign": "b"}]})
        # a name whose JSON needs an escape is matched by reading every spec
        _insert(db, "Segment", 'we"ird', {"match": "all", "rules": []})
        _insert(db, "Campaign", "d", {"audience": {"segment": 'we"ird'}})
    cases = [(Kind.SEGMENT, "news"), (Kind.SEGMENT, "news-2"), (Kind.CAMPAIGN, "a"),
             (Kind.CAMPAIGN, "c"), (Kind.SEGMENT, 'we"ird'), (Kind.PLAN, "p")]
    found = {case: referenced_by(db, *case) for case in cases}
    assert found == {case: _by_reading_all(db, *case) for case in cases}
    assert found[(Kind.SEGMENT, "news")] == ["campaign/a"]
    assert found[(Kind.SEGMENT, "news-2")] == ["campaign/b"]
    assert found[(Kind.CAMPAIGN, "a")] == ["plan/p"]
    assert found[(Kind.SEGMENT, 'we"ird')] == ["campaign/d"]
    assert found[(Kind.PLAN, "p")] == []
    assert [o.name for o in object_store.records_containing(db, '"news"')] == ["a", "c"]
    db.close()


def test_describe_and_delete_name_the_same_referrers(cli, fresh_copy):
    shown = cli("-o", "json", "describe", "segment", "vips")
    assert shown.exit_code == 0, shown
    assert shown.json["referenced_by"] == ["campaign/spring-sale"]
    assert "it is referenced by campaign/spring-sale" in shown.json["in_use"]
    refused = cli("delete", "segment", "vips")
    assert refused.exit_code != 0
    assert "it is referenced by campaign/spring-sale" in refused.stderr

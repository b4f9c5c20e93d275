"""The calendar/contacts planner and collection mapping: pure, one truth table."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailferry.domain.davplan import (
    Listed,
    Recorded,
    Step,
    map_collections,
    plan_items,
    target_name,
)
from mailferry.domain.items import (
    Collection,
    CollectionKind,
    ComponentKind,
    Item,
    ItemKey,
    duplicate_keys,
    item_key,
)
from tests.unit.dav_samples import VCARD3

CAL, BOOK = CollectionKind.CALENDAR, CollectionKind.ADDRESSBOOK


def key(uid):
    return ItemKey(uid=uid)


def steps(actions):
    return [(a.step, a.source_href, a.target_href) for a in actions]


def test_item_identity_is_the_uid_else_the_normalised_content():
    assert item_key("abc@x", b"whatever").uid == "abc@x"
    no_uid = VCARD3.replace(b"UID:alice-3@example.com\r\n", b"")
    refolded = no_uid.replace(b"\r\n ", b"").replace(b"\r\n", b"\n")
    assert item_key(None, no_uid) == item_key(None, refolded) == item_key(" ", no_uid)
    restamped = no_uid.replace(b"REV:2026-01-01T09:00:00Z", b"REV:2026-12-01T00:00:00Z")
    reordered = restamped.replace(b"FN:Alice Example\r\n", b"").replace(
        b"END:VCARD", b"FN:Alice Example\r\nEND:VCARD"
    )
    assert item_key(None, reordered) == item_key(None, no_uid)
    assert item_key(None, no_uid).content is not None
    assert item_key(None, no_uid) != item_key(None, no_uid.replace(b"Alice", b"Alicia"))
    item = Item("/cal/a.vcf", '"1"', no_uid, ComponentKind.VCARD)
    assert item.key == item_key(None, no_uid)
    with pytest.raises(ValueError, match="exactly one"):
        ItemKey()


def test_duplicate_uids_in_one_collection_are_found():
    found = duplicate_keys(
        [("/c/b.ics", key("u1")), ("/c/a.ics", key("u1")), ("/c/c.ics", key("u2"))]
    )
    assert [(d.key, d.hrefs) for d in found] == [(key("u1"), ("/c/a.ics", "/c/b.ics"))]
    assert key("u1").describe() == "UID u1"


def test_first_pass_creates_each_item_named_by_its_uid():
    source = [
        Listed("/s/1.ics", '"a"', key("one@x")),
        Listed("/s/2.ics", '"b"', key("two/slashed")),
    ]
    actions = plan_items(source, [], [])
    assert [a.step for a in actions] == [Step.CREATE, Step.CREATE]
    assert actions[0].target_href == "one@x.ics"
    assert actions[1].target_href.endswith(".ics")
    assert "/" not in actions[1].target_href


def test_lost_state_matches_the_target_by_uid_and_never_creates_again():
    source = [Listed("/s/1.ics", '"a"', key("one@x")), Listed("/s/2.ics", '"b"', key("two@x"))]
    target = [Listed("/t/whatever.ics", '"z"', key("one@x"))]
    actions = plan_items(source, target, [])
    assert steps(actions) == [
        (Step.SKIP_EXISTING, "/s/1.ics", "/t/whatever.ics"),
        (Step.CREATE, "/s/2.ics", "two@x.ics"),
    ]
    assert actions[0].if_match == '"z"'


def test_recorded_items_update_when_the_source_changed_and_conflict_when_the_target_did():
    state = [
        Recorded("/s/same.ics", '"1"', key("same"), "/t/same.ics", '"t1"'),
        Recorded("/s/src.ics", '"1"', key("src"), "/t/src.ics", '"t1"'),
        Recorded("/s/tgt.ics", '"1"', key("tgt"), "/t/tgt.ics", '"t1"'),
        Recorded("/s/both.ics", '"1"', key("both"), "/t/both.ics", '"t1"'),
        Recorded("/s/gone-t.ics", '"1"', key("gone-t"), "/t/gone-t.ics", '"t1"'),
        Recorded("/s/gone-s.ics", '"1"', key("gone-s"), "/t/gone-s.ics", '"t1"'),
    ]
    source = [
        Listed("/s/same.ics", '"1"', key("same")),
        Listed("/s/src.ics", '"2"', key("src")),
        Listed("/s/tgt.ics", '"1"', key("tgt")),
        Listed("/s/both.ics", '"2"', key("both")),
        Listed("/s/gone-t.ics", '"1"', key("gone-t")),
    ]
    target = [
        Listed("/t/same.ics", '"t1"', key("same")),
        Listed("/t/src.ics", '"t1"', key("src")),
        Listed("/t/tgt.ics", '"t2"', key("tgt")),
        Listed("/t/both.ics", '"t2"', key("both")),
        Listed("/t/gone-s.ics", '"t1"', key("gone-s")),
    ]
    by_source = {a.source_href: a for a in plan_items(source, target, state)}
    assert by_source["/s/same.ics"].step == Step.UNCHANGED
    assert by_source["/s/src.ics"].step == Step.UPDATE
    assert by_source["/s/src.ics"].if_match == '"t1"'
    assert by_source["/s/tgt.ics"].step == Step.CONFLICT
    assert "on the target only" in by_source["/s/tgt.ics"].reason
    assert by_source["/s/both.ics"].step == Step.CONFLICT
    assert "on both sides" in by_source["/s/both.ics"].reason
    assert by_source["/s/gone-t.ics"].step == Step.DELETED_ON_TARGET
    assert by_source["/s/gone-s.ics"].step == Step.DELETED_ON_SOURCE
    assert by_source["/s/gone-s.ics"].target_href == "/t/gone-s.ics"


def test_an_item_renamed_on_the_source_is_neither_created_again_nor_reported_deleted():
    state = [Recorded("/s/old.ics", '"1"', key("u"), "/t/u.ics", '"t1"')]
    source = [Listed("/s/new.ics", '"1"', key("u"))]
    target = [Listed("/t/u.ics", '"t1"', key("u"))]
    assert steps(plan_items(source, target, state)) == [
        (Step.SKIP_EXISTING, "/s/new.ics", "/t/u.ics")
    ]


def test_two_source_items_with_one_uid_give_one_create_and_a_reported_duplicate():
    source = [Listed("/s/b.ics", '"1"', key("u")), Listed("/s/a.ics", '"1"', key("u"))]
    actions = plan_items(source, [], [])
    assert steps(actions) == [
        (Step.DUPLICATE, "/s/b.ics", None),
        (Step.CREATE, "/s/a.ics", "u.ics"),
    ]
    assert actions[0].reason == "same UID u as /s/a.ics: not copied"


def test_the_duplicate_the_state_knows_is_the_one_kept():
    source = [Listed("/s/a.ics", '"1"', key("u")), Listed("/s/b.ics", '"1"', key("u"))]
    state = [Recorded("/s/b.ics", '"1"', key("u"), "/t/u.ics", '"t"')]
    target = [Listed("/t/u.ics", '"t"', key("u"))]
    assert steps(plan_items(source, target, state)) == [
        (Step.DUPLICATE, "/s/a.ics", None),
        (Step.UNCHANGED, "/s/b.ics", "/t/u.ics"),
    ]


def test_target_names_avoid_names_taken_by_other_items():
    taken = {"u.ics"}
    first = target_name(key("u"), ".ics", taken)
    assert first != "u.ics"
    assert target_name(key("u"), ".ics", taken | {first}) not in {"u.ics", first}
    assert target_name(ItemKey(content="ab" * 32), ".vcf", set()).endswith(".vcf")


# Hypothesis: any listings and state, never two creates (or writes) for one identity.
_keys = st.sampled_from([key(f"u{i}") for i in range(5)] + [ItemKey(content="c" * 64)])
_etags = st.sampled_from(['"1"', '"2"', None])
_hrefs = st.sampled_from([f"/s/{i}.ics" for i in range(6)])
_listed = st.builds(Listed, _hrefs, _etags, _keys)
_targets = st.builds(Listed, st.sampled_from([f"/t/{i}.ics" for i in range(6)]), _etags, _keys)
_rows = st.builds(
    Recorded, _hrefs, _etags, _keys, st.sampled_from([f"/t/{i}.ics" for i in range(6)]), _etags
)


@given(
    st.lists(_listed, max_size=8, unique_by=lambda i: i.href),
    st.lists(_targets, max_size=8, unique_by=lambda i: i.href),
    st.lists(_rows, max_size=6, unique_by=lambda r: r.source_href),
)
def test_never_two_creates_for_one_identity(source, target, state):
    actions = plan_items(source, target, state)
    creates = Counter(a.key for a in actions if a.step == Step.CREATE)
    assert all(n == 1 for n in creates.values())
    on_target = {t.key for t in target}
    assert not any(a.step == Step.CREATE and a.key in on_target for a in actions)
    writes = Counter(a.key for a in actions if a.step in {Step.CREATE, Step.UPDATE})
    assert all(n == 1 for n in writes.values())
    names = [a.target_href for a in actions if a.step == Step.CREATE]
    assert len(names) == len(set(names))
    assert not set(names) & {t.href.rsplit("/", 1)[-1] for t in target}
    # every source item is accounted for exactly once
    assert sorted(a.source_href for a in actions if a.step != Step.DELETED_ON_SOURCE) == sorted(
        i.href for i in source
    )


def cal(name, *, default=False, shown=None, components=()):
    return Collection(CAL, name, shown, default=default, components=frozenset(components))


def test_collections_map_by_name_and_default_to_default_and_the_rest_are_created():
    source = [
        cal("personal", default=True),
        cal("work", shown="Work"),
        cal("holidays"),
        Collection(BOOK, "contacts", default=True),
    ]
    target = [cal("calendar", default=True), cal("work"), Collection(BOOK, "card", default=True)]
    mapped = {
        (m.source.kind, m.source.name): m for m in map_collections(source, target, can_create=True)
    }
    assert mapped[(CAL, "personal")].target == "calendar"
    assert not mapped[(CAL, "personal")].create
    assert mapped[(CAL, "work")].target == "work"
    assert mapped[(CAL, "holidays")].target == "holidays"
    assert mapped[(CAL, "holidays")].create
    assert mapped[(BOOK, "contacts")].target == "card"


def test_a_name_already_taken_by_the_default_mapping_is_not_merged_into_it():
    source = [cal("personal", default=True), cal("calendar")]
    target = [cal("calendar", default=True)]
    mapped = {m.source.name: m for m in map_collections(source, target, can_create=True)}
    assert mapped["personal"].target == "calendar"
    assert (mapped["calendar"].target, mapped["calendar"].create) == ("calendar-2", True)


def test_display_names_match_when_names_differ():
    source = [cal("a1b2c3", shown="Family")]
    target = [cal("calendar", default=True), cal("x9y8", shown="family")]
    (mapping,) = map_collections(source, target, can_create=True)
    assert mapping.target == "x9y8"


def test_a_target_that_cannot_create_collections_gets_everything_in_its_default():
    source = [cal("personal", default=True), cal("tasks", components=[ComponentKind.VTODO])]
    target = [cal("primary", default=True, components=[ComponentKind.VEVENT])]
    mapped = {m.source.name: m for m in map_collections(source, target, can_create=False)}
    assert mapped["tasks"].target == "primary"
    assert not mapped["tasks"].create
    assert mapped["tasks"].note == (
        "the target cannot create collections: into its default calendar 'primary'; "
        "'primary' does not accept VTODO"
    )
    assert mapped["personal"].note is None


def test_no_collection_of_that_kind_on_a_target_that_cannot_create():
    (mapping,) = map_collections([Collection(BOOK, "contacts")], [cal("primary")], can_create=False)
    assert mapping.target is None
    assert mapping.note == "the target has no addressbook"

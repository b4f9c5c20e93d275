"""Folder mapping: delimiters, roles, --map, filters, collisions (pure, no servers)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailferry.domain.errors import ConfigError
from mailferry.domain.folders import (
    FolderPlan,
    MappingOptions,
    find_roles,
    map_folders,
    parse_map,
    role_of,
)
from mailferry.domain.model import FolderInfo, Role


def folder(
    name: str, delimiter: str | None = "/", *flags: str, subscribed: bool = False
) -> FolderInfo:
    return FolderInfo(name, delimiter, frozenset(flags), subscribed)


def tree(delimiter: str, *names: str) -> list[FolderInfo]:
    return [folder(name, delimiter) for name in names]


def targets(plan: FolderPlan) -> dict[str, str]:
    return {m.source.name: m.target for m in plan.mappings}


def reasons(plan: FolderPlan) -> dict[str, str | None]:
    return {m.source.name: m.rename_reason for m in plan.mappings}


# --- delimiter translation and CREATE order ---------------------------------------------------


def test_slash_to_dot() -> None:
    source = tree("/", "INBOX", "Work", "Work/Projects", "Work/Projects/2024")
    plan = map_folders(source, tree(".", "INBOX"), ".")
    assert targets(plan) == {
        "INBOX": "INBOX",
        "Work": "Work",
        "Work/Projects": "Work.Projects",
        "Work/Projects/2024": "Work.Projects.2024",
    }
    assert plan.create == ("Work", "Work.Projects", "Work.Projects.2024")
    assert all(m.rename_reason is None for m in plan.mappings)


def test_dot_to_slash_keeps_inbox_children_under_inbox() -> None:
    source = tree(".", "INBOX", "INBOX.Lists", "INBOX.Lists.python", "INBOX.Lists.rust")
    plan = map_folders(source, tree("/", "INBOX"), "/")
    assert targets(plan) == {
        "INBOX": "INBOX",
        "INBOX.Lists": "INBOX/Lists",
        "INBOX.Lists.python": "INBOX/Lists/python",
        "INBOX.Lists.rust": "INBOX/Lists/rust",
    }
    assert plan.create == ("INBOX/Lists", "INBOX/Lists/python", "INBOX/Lists/rust")
    assert [m.role for m in plan.mappings] == [Role.INBOX, None, None, None]


def test_unlisted_parents_are_created_first() -> None:
    plan = map_folders(tree("/", "a/b/c", "x/y"), [], ".")
    assert targets(plan) == {"a/b/c": "a.b.c", "x/y": "x.y"}
    assert plan.create == ("a", "a.b", "a.b.c", "x", "x.y")


def test_parents_come_before_children_even_when_listed_after() -> None:
    plan = map_folders(tree("/", "a/b/c", "b", "a", "a/b"), [], ".")
    assert [m.source.name for m in plan.mappings] == ["a", "a/b", "a/b/c", "b"]
    assert plan.create == ("a", "a.b", "a.b.c", "b")


def test_existing_target_folders_are_not_created_and_inbox_is_case_insensitive() -> None:
    source = tree("/", "INBOX", "INBOX/x", "Work", "Work/a")
    plan = map_folders(source, tree(".", "inbox", "Work"), ".")
    assert plan.create == ("INBOX.x", "Work.a")


def test_target_names_are_case_sensitive_apart_from_inbox() -> None:
    plan = map_folders(tree("/", "work"), tree(".", "Work"), ".")
    assert plan.create == ("work",)


def test_non_ascii_and_ampersand_names_are_unchanged() -> None:
    names = ("Büro", "Büro/Ärger & Ösen", "R&D", "R&D/日本語", "Проекты", "&-")
    plan = map_folders(tree("/", *names), [], ".")
    assert targets(plan) == {n: n.replace("/", ".") for n in names}
    assert all(m.rename_reason is None for m in plan.mappings)


def test_flat_source_namespace() -> None:
    plan = map_folders([folder("a.b", None)], [], "/")
    assert targets(plan) == {"a.b": "a.b"}


# --- renames: delimiter inside a name, empty levels, collisions --------------------------------


def test_target_delimiter_inside_a_name_is_replaced_with_a_reason() -> None:
    plan = map_folders(tree(".", "Invoices 1/2", "Invoices 1/2.Paid"), [], "/")
    assert targets(plan) == {
        "Invoices 1/2": "Invoices 1_2",
        "Invoices 1/2.Paid": "Invoices 1_2/Paid",
    }
    assert (
        reasons(plan)["Invoices 1/2"] == "'/' is the target's hierarchy delimiter, replaced by '_'"
    )
    assert reasons(plan)["Invoices 1/2.Paid"] is None  # its parent's rename is reported once
    assert plan.create == ("Invoices 1_2", "Invoices 1_2/Paid")


def test_replacement_falls_back_to_dash_then_to_a_suffix() -> None:
    plan = map_folders(tree(".", "a_b", "a/b", "a-b", "c/d"), [], "/")
    assert targets(plan) == {"a_b": "a_b", "a/b": "a-b", "a-b": "a-b (2)", "c/d": "c_d"}
    assert reasons(plan)["a/b"] == "'/' is the target's hierarchy delimiter, replaced by '-'"
    assert reasons(plan)["a-b"] == "another source folder already goes to 'a-b'"


def test_collision_suffix_counts_up_and_children_follow_the_renamed_parent() -> None:
    source = tree(".", "a_b", "a-b", "a/b", "a/b.c", "x/y", "x_y")
    plan = map_folders(source, [], "/")
    assert targets(plan) == {
        "a_b": "a_b",
        "a-b": "a-b",
        "a/b": "a_b (2)",
        "a/b.c": "a_b (2)/c",
        "x/y": "x_y",
        "x_y": "x_y (2)",
    }
    why = reasons(plan)["a/b"]
    assert why is not None
    assert "replaced by '_'" in why
    assert "another source folder already goes to 'a_b'" in why


def test_replacement_avoids_a_target_delimiter_of_underscore() -> None:
    plan = map_folders(tree("/", "a_b"), [], "_")
    assert targets(plan) == {"a_b": "a-b"}


def test_empty_levels_are_dropped_with_a_reason() -> None:
    plan = map_folders(tree("/", "a//b", "c/"), [], ".")
    assert targets(plan) == {"a//b": "a.b", "c/": "c"}
    assert reasons(plan) == {
        "a//b": "empty hierarchy level dropped",
        "c/": "empty hierarchy level dropped",
    }
    assert plan.create == ("a", "a.b", "c")


def test_a_name_made_only_of_delimiters_still_gets_a_name() -> None:
    plan = map_folders(tree("/", "/"), [], ".")
    assert targets(plan) == {"/": "_"}
    assert plan.create == ("_",)


def test_a_name_ending_with_the_delimiter_beside_its_twin_is_suffixed() -> None:
    plan = map_folders(tree("/", "c", "c/"), [], ".")
    assert targets(plan) == {"c": "c", "c/": "c (2)"}


def test_suffixes_do_not_depend_on_what_the_target_already_holds() -> None:
    source = tree(".", "a_b", "a/b", "a-b")
    first = map_folders(source, [], "/")
    again = map_folders(source, tree("/", *first.create), "/")
    assert targets(again) == targets(first)
    assert again.create == ()


# --- roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "delimiter", "flags", "role"),
    [
        ("INBOX", "/", (), Role.INBOX),
        ("inbox", None, (), Role.INBOX),
        ("Stuff", "/", ("\\Sent",), Role.SENT),
        ("Stuff", "/", ("\\JUNK",), Role.JUNK),
        ("[Gmail]/All Mail", "/", ("\\All", "\\HasNoChildren"), Role.ALL),
        ("[Gmail]/Starred", "/", ("\\Flagged",), Role.FLAGGED),
        ("Trash", "/", ("\\Archive",), Role.ARCHIVE),  # the flag beats the name
        ("Sent Items", "/", (), Role.SENT),
        ("gesendete elemente", "/", (), Role.SENT),
        ("Éléments envoyés", "/", (), Role.SENT),
        (unicodedata.normalize("NFD", "Éléments envoyés"), "/", (), Role.SENT),
        ("Отправленные", "/", (), Role.SENT),
        ("Wysłane", "/", (), Role.SENT),
        ("Entwürfe", "/", (), Role.DRAFTS),
        ("Черновики", "/", (), Role.DRAFTS),
        ("INBOX.Papierkorb", ".", (), Role.TRASH),
        ("Inbox/Deleted Items", "/", (), Role.TRASH),
        ("Koš", "/", (), Role.TRASH),
        ("Courrier indésirable", "/", (), Role.JUNK),
        ("SPAM", "/", (), Role.JUNK),
        ("Archiv", "/", (), Role.ARCHIVE),
        ("Work/Sent", "/", (), None),  # neither top level nor directly under INBOX
        ("INBOX.Lists.Sent", ".", (), None),
        ("Sentinel", "/", (), None),
        ("Work", "/", ("\\HasChildren",), None),
    ],
)
def test_role_of(
    name: str, delimiter: str | None, flags: tuple[str, ...], role: Role | None
) -> None:
    assert role_of(folder(name, delimiter, *flags), delimiter) is role


def test_find_roles_prefers_flag_then_table_order_then_list_order() -> None:
    folders = [
        folder("INBOX"),
        folder("Sent Items"),
        folder("Sent"),
        folder("Gesendet", "/", "\\Sent"),
        folder("Trash"),
        folder("INBOX/Trash"),
        folder("Spam", "/", "\\Noselect"),
        folder("Junk E-mail"),
    ]
    roles = find_roles(folders)
    assert {role: f.name for role, f in roles.items()} == {
        Role.INBOX: "INBOX",
        Role.SENT: "Gesendet",
        Role.TRASH: "Trash",
        Role.JUNK: "Junk E-mail",  # the \Noselect "Spam" holds no messages
    }


def test_role_folder_merges_onto_the_targets_role_folder_with_children() -> None:
    source = [folder("INBOX"), folder("Sent"), folder("Sent/2019"), folder("Papierkorb")]
    target = [
        folder("INBOX", "."),
        folder("Sent Items", ".", "\\Sent"),
        folder("Deleted Items", "."),
    ]
    plan = map_folders(source, target, ".")
    assert targets(plan) == {
        "INBOX": "INBOX",
        "Sent": "Sent Items",
        "Sent/2019": "Sent Items.2019",
        "Papierkorb": "Deleted Items",
    }
    assert [m.role for m in plan.mappings] == [Role.INBOX, Role.SENT, None, Role.TRASH]
    assert plan.create == ("Sent Items.2019",)  # never a second Sent beside the target's


def test_courier_role_folders_map_to_top_level_role_folders_and_back() -> None:
    source = tree(".", "INBOX", "INBOX.Sent", "INBOX.Drafts", "INBOX.Sent.old")
    target = tree("/", "INBOX", "Sent", "Drafts")
    plan = map_folders(source, target, "/")
    assert targets(plan) == {
        "INBOX": "INBOX",
        "INBOX.Sent": "Sent",
        "INBOX.Drafts": "Drafts",
        "INBOX.Sent.old": "Sent/old",
    }
    back = map_folders(target, source, ".")
    assert targets(back) == {"INBOX": "INBOX", "Sent": "INBOX.Sent", "Drafts": "INBOX.Drafts"}


def test_role_folder_keeps_its_translated_name_when_the_target_has_no_such_role() -> None:
    plan = map_folders(tree(".", "INBOX", "INBOX.Sent", "INBOX.Sent.2019"), tree("/", "INBOX"), "/")
    assert targets(plan)["INBOX.Sent"] == "INBOX/Sent"
    assert plan.create == ("INBOX/Sent", "INBOX/Sent/2019")


def test_every_folder_of_a_role_merges_into_the_targets_role_folder() -> None:
    source = [
        folder("INBOX"),
        folder("Sent Items"),
        folder("Sent", "/", "\\Sent"),
        folder("Sent Items/2019"),
        folder("Gesendete Elemente"),
        folder("Entwürfe"),
        folder("Drafts", "/", "\\Drafts"),
        folder("Deleted Items"),
        folder("Papierkorb"),
        folder("Junk E-mail"),
        folder("Spam", "/", "\\Junk"),
        folder("Archiv"),
        folder("Archive", "/", "\\Archive"),
    ]
    target = [
        folder("INBOX", "."),
        folder("Sent Items", ".", "\\Sent"),
        folder("Drafts", ".", "\\Drafts"),
        folder("Trash", ".", "\\Trash"),
        folder("Junk", ".", "\\Junk"),
        folder("Archive", ".", "\\Archive"),
    ]
    plan = map_folders(source, target, ".")
    assert targets(plan) == {
        "INBOX": "INBOX",
        "Sent Items": "Sent Items",
        "Sent": "Sent Items",
        "Sent Items/2019": "Sent Items.2019",
        "Gesendete Elemente": "Sent Items",
        "Entwürfe": "Drafts",
        "Drafts": "Drafts",
        "Deleted Items": "Trash",
        "Papierkorb": "Trash",
        "Junk E-mail": "Junk",
        "Spam": "Junk",
        "Archiv": "Archive",
        "Archive": "Archive",
    }
    assert plan.create == ("Sent Items.2019",)  # no role folder beside the target's
    why = reasons(plan)
    assert why["Sent"] is None  # the winner goes to the target's Sent folder as before
    assert why["Sent Items"] == "also a Sent folder, like 'Sent': merged into 'Sent Items'"
    assert why["Papierkorb"] == "also a Trash folder, like 'Deleted Items': merged into 'Trash'"
    assert why["Entwürfe"] == "also a Drafts folder, like 'Drafts': merged into 'Drafts'"
    assert why["Drafts"] is None
    assert {m.source.name for m in plan.mappings if m.role is Role.SENT} == {"Sent"}


def test_role_folders_merge_into_the_winners_name_when_the_target_has_no_such_role() -> None:
    source = [folder("Sent Messages", "/", "\\Sent"), folder("Sent"), folder("Éléments envoyés")]
    plan = map_folders(source, tree(".", "INBOX"), ".")
    assert set(targets(plan).values()) == {"Sent Messages"}
    assert plan.create == ("Sent Messages",)


def test_map_keeps_a_role_folder_apart() -> None:
    source = [folder("Sent", "/", "\\Sent"), folder("Sent Items")]
    target = [folder("Sent", ".", "\\Sent")]
    options = MappingOptions(maps=(parse_map("Sent Items=Old Sent"),))
    plan = map_folders(source, target, ".", options)
    assert targets(plan) == {"Sent": "Sent", "Sent Items": "Old Sent"}
    assert reasons(plan)["Sent Items"] is None


def test_virtual_folders_keep_their_role_but_are_placed_by_name() -> None:
    source = [folder("[Gmail]", "/", "\\Noselect"), folder("[Gmail]/All Mail", "/", "\\All")]
    target = [folder("Archive", ".", "\\All")]
    plan = map_folders(source, target, ".")
    assert targets(plan) == {"[Gmail]/All Mail": "[Gmail].All Mail"}
    assert plan.mappings[0].role is Role.ALL


# --- --map --------------------------------------------------------------------------------------


def test_map_exact_and_prefix() -> None:
    source = tree("/", "Archive", "Archive/2019", "Archive/2019/Q1", "Archived")
    options = MappingOptions(maps=(parse_map("Archive=Old.Archive"),))
    plan = map_folders(source, [], ".", options)
    assert targets(plan) == {
        "Archive": "Old.Archive",
        "Archive/2019": "Old.Archive.2019",
        "Archive/2019/Q1": "Old.Archive.2019.Q1",
        "Archived": "Archived",  # a prefix of segments, not of characters
    }
    assert plan.mappings[0].role is Role.ARCHIVE
    assert plan.create == (
        "Old",
        "Old.Archive",
        "Old.Archive.2019",
        "Old.Archive.2019.Q1",
        "Archived",
    )


def test_longest_map_wins_and_unlisted_mapped_parents_still_guide_children() -> None:
    source = tree("/", "A/2019/Q1", "A/2020")
    options = MappingOptions(maps=(("A", "Old"), ("A/2019", "Y2019")))
    plan = map_folders(source, [], ".", options)
    assert targets(plan) == {"A/2019/Q1": "Y2019.Q1", "A/2020": "Old.2020"}


def test_map_beats_role_and_intended_merges_are_not_suffixed() -> None:
    source = [folder("INBOX"), folder("Sent", "/", "\\Sent"), folder("Old Sent"), folder("Kept")]
    target = [folder("INBOX", "."), folder("Sent", ".", "\\Sent")]
    maps = (("Sent", "Archive.Sent"), ("Old Sent", "Archive.Sent"), ("INBOX", "INBOX"))
    plan = map_folders(source, target, ".", MappingOptions(maps=maps))
    assert targets(plan) == {
        "INBOX": "INBOX",
        "Sent": "Archive.Sent",
        "Old Sent": "Archive.Sent",
        "Kept": "Kept",
    }
    assert all(m.rename_reason is None for m in plan.mappings)
    assert plan.create == ("Archive", "Archive.Sent", "Kept")


def test_ordinary_folders_make_way_for_a_mapped_target() -> None:
    source = tree("/", "New", "Old")
    plan = map_folders(source, [], ".", MappingOptions(maps=(("Old", "New"),)))
    assert targets(plan) == {"New": "New (2)", "Old": "New"}


def test_map_problems_are_reported_together() -> None:
    maps = (("a", "b"), ("a", "c"), ("x", "y..z"))
    with pytest.raises(ConfigError) as caught:
        map_folders(tree("/", "a"), [], ".", MappingOptions(maps=maps))
    assert len(caught.value.problems) == 2


def test_parse_map() -> None:
    assert parse_map("Archive=Old.Archive") == ("Archive", "Old.Archive")
    assert parse_map("a=b=c") == ("a", "b=c")
    assert parse_map("Entwürfe=Drafts") == ("Entwürfe", "Drafts")


@pytest.mark.parametrize("spec", ["Archive", "=Old", "Archive=", " =Old", "=", ""])
def test_parse_map_rejects(spec: str) -> None:
    with pytest.raises(ConfigError, match="--map"):
        parse_map(spec)


# --- selection, \Noselect, subscriptions ----------------------------------------------------------


def test_include_and_exclude() -> None:
    source = tree("/", "INBOX", "Work", "Work/Private", "Work/Public", "Other")
    options = MappingOptions(include=(re.compile(r"^Work"),), exclude=(re.compile("Private"),))
    plan = map_folders(source, [], ".", options)
    assert targets(plan) == {"Work": "Work", "Work/Public": "Work.Public"}
    assert plan.excluded == ("INBOX", "Work/Private", "Other")


def test_descendants_of_an_excluded_folder_are_judged_on_their_own() -> None:
    source = tree("/", "Work", "Work/Sub")
    plan = map_folders(source, [], ".", MappingOptions(exclude=(re.compile("^Work$"),)))
    assert targets(plan) == {"Work/Sub": "Work.Sub"}
    assert plan.excluded == ("Work",)
    assert plan.create == ("Work", "Work.Sub")  # the parent exists only as hierarchy


def test_noselect_source_parents_are_created_but_not_mapped() -> None:
    source = [
        folder("Lists", "/", "\\Noselect"),
        folder("Lists/a"),
        folder("Gone", "/", "\\NonExistent"),
    ]
    plan = map_folders(source, [], ".")
    assert targets(plan) == {"Lists/a": "Lists.a"}
    assert plan.create == ("Lists", "Lists.a")
    assert plan.excluded == ()


def test_noselect_target_parent_is_enough_for_children_but_not_as_a_target() -> None:
    source = tree("/", "Lists", "Lists/a")
    target = [folder("Lists", ".", "\\Noselect")]
    assert map_folders(source, target, ".").create == ("Lists", "Lists.a")
    assert map_folders(source[1:], target, ".").create == ("Lists.a",)


def test_renamed_noselect_parent_reason_is_reported_on_its_children() -> None:
    source = [folder("a/b", ".", "\\Noselect"), folder("a/b.c", ".")]
    plan = map_folders(source, [], "/")
    assert targets(plan) == {"a/b.c": "a_b/c"}
    assert reasons(plan)["a/b.c"] == "'/' is the target's hierarchy delimiter, replaced by '_'"


def test_subscriptions_follow_the_mapping_and_are_deduplicated() -> None:
    source = [
        folder("INBOX", subscribed=True),
        folder("Sent", "/", "\\Sent", subscribed=True),
        folder("Old Sent", subscribed=True),
        folder("Unsubscribed"),
        folder("Lists", "/", "\\Noselect", subscribed=True),
        folder("Lists/a", subscribed=True),
    ]
    target = [folder("INBOX", "."), folder("Sent Items", ".", "\\Sent")]
    options = MappingOptions(maps=(("Old Sent", "Sent Items"),))
    plan = map_folders(source, target, ".", options)
    assert plan.subscribe == ("INBOX", "Sent Items", "Lists.a")


def test_folders_the_target_has_subscribed_are_not_subscribed_again() -> None:
    """A re-run sends no SUBSCRIBE for a folder already subscribed (one round trip each)."""
    source = [folder("INBOX", subscribed=True), folder("a", subscribed=True)]
    source += [folder("a/b", subscribed=True), folder("c", subscribed=True)]
    target = [folder("inbox", ".", subscribed=True), folder("a", ".", subscribed=True)]
    target += [folder("a.b", "."), folder("c", ".", subscribed=False)]
    plan = map_folders(source, target, ".")
    assert plan.subscribe == ("a.b", "c")


def test_sharing_finds_every_source_folder_merged_into_a_target() -> None:
    source = [folder("Sent", "/", "\\Sent"), folder("Sent Items"), folder("x")]
    plan = map_folders(source, [], ".")
    assert [m.source.name for m in plan.sharing("Sent")] == ["Sent", "Sent Items"]
    assert [m.source.name for m in plan.sharing("x")] == ["x"]
    assert plan.sharing("nowhere") == ()


def test_empty_target_delimiter_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="delimiter"):
        map_folders([], [], "")


# --- properties -----------------------------------------------------------------------------------

_SEGMENTS = ["a", "b", "Sent", "Trash", "Junk", "INBOX", "x/y", "x.y", "x_y", "x-y", "", "é"]
_TARGET_SEGMENTS = ["a", "b", "Sent", "Sent Items", "Trash", "x_y", "x-y"]


@st.composite
def sides(draw: st.DrawFn) -> tuple[list[FolderInfo], list[FolderInfo], str, MappingOptions]:
    source_delimiter, target_delimiter = draw(st.sampled_from([("/", "."), (".", "/")]))
    paths = draw(
        st.lists(st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=4), max_size=12)
    )
    names = list(dict.fromkeys(source_delimiter.join(p) for p in paths))
    keys: set[str] = set()
    source: list[FolderInfo] = []
    for name in names:
        key = "INBOX" + name[5:] if name[:5].upper() == "INBOX" else name
        if key in keys:  # a server lists INBOX in one spelling only
            continue
        keys.add(key)
        flags = draw(
            st.sets(st.sampled_from(["\\Noselect", "\\Sent", "\\Junk", "\\All"]), max_size=1)
        )
        source.append(FolderInfo(name, source_delimiter, frozenset(flags), draw(st.booleans())))
    target_paths = draw(
        st.lists(st.lists(st.sampled_from(_TARGET_SEGMENTS), min_size=1, max_size=3))
    )
    target = [
        FolderInfo(
            target_delimiter.join(p),
            target_delimiter,
            frozenset(
                draw(st.sets(st.sampled_from(["\\Sent", "\\Noselect", "\\Trash"]), max_size=1))
            ),
        )
        for p in dict.fromkeys(tuple(p) for p in target_paths)
    ]
    maps: tuple[tuple[str, str], ...] = ()
    if draw(st.booleans()) and source:
        src = draw(st.sampled_from([f.name for f in source]))
        maps = ((src, draw(st.sampled_from(["Mapped", "a", f"Old{target_delimiter}Stuff"]))),)
    exclude = draw(st.sampled_from([(), (re.compile("b"),), (re.compile("^x"),)]))
    return source, target, target_delimiter, MappingOptions(maps=maps, exclude=exclude)


def _target_key(name: str, delimiter: str) -> str:
    head, sep, rest = name.partition(delimiter)
    return ("INBOX" if head.upper() == "INBOX" else head) + sep + rest


@settings(max_examples=300, deadline=None)
@given(sides())
def test_every_selected_folder_gets_one_sound_name(
    case: tuple[list[FolderInfo], list[FolderInfo], str, MappingOptions],
) -> None:
    source, target, delimiter, options = case
    plan = map_folders(source, target, delimiter, options)

    selected = [f.name for f in source if f.selectable and f.name not in plan.excluded]
    assert sorted(m.source.name for m in plan.mappings) == sorted(selected)

    for mapping in plan.mappings:
        assert "" not in mapping.target.split(delimiter)

    mapped_sources = {src for src, _ in options.maps}
    ordinary = [  # role folders (winners and those merged into them) are intended merges
        m
        for m in plan.mappings
        if m.role is None
        and role_of(m.source, m.source.delimiter) is None
        and m.source.name not in mapped_sources
    ]
    others = [m for m in plan.mappings if m not in ordinary]
    ordinary_keys = [_target_key(m.target, delimiter) for m in ordinary]
    assert len(set(ordinary_keys)) == len(ordinary_keys)
    assert not set(ordinary_keys) & {_target_key(m.target, delimiter) for m in others}

    existing = {_target_key(f.name, delimiter) for f in target} | {"INBOX"}
    created: set[str] = set()
    for name in plan.create:
        parent = name.rpartition(delimiter)[0]
        assert not parent or _target_key(parent, delimiter) in existing | created
        created.add(_target_key(name, delimiter))
    selectable = {_target_key(f.name, delimiter) for f in target if f.selectable} | {"INBOX"}
    for mapping in plan.mappings:
        assert _target_key(mapping.target, delimiter) in selectable | created

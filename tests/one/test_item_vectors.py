"""EC2 items one attribute per item (`documents.ItemVectors`), checked against a small
model of how oned stores a replace-mode template (image, user): one attribute per name."""

from __future__ import annotations

import pytest
from lxml import etree

from ec2gw.one import documents


def replace_mode(*updates: tuple[str, int]) -> documents.Element:
    """The TEMPLATE after `*.update(xml, append)` calls on a replace-mode template: every
    attribute set replaces those of its name; append=1 merges, append=0 replaces it all."""
    kept: dict[str, documents.Element] = {}
    for xml, append in updates:
        new: dict[str, documents.Element] = {}
        for child in documents.parse(xml):
            new[child.tag] = child  # replace mode: the last of a name wins
        kept = {**kept, **new} if append else new
    template = etree.Element("TEMPLATE")
    for name in sorted(kept):
        template.append(kept[name])
    return template


def legacy(*tags: tuple[str, str]) -> str:
    template = etree.Element("TEMPLATE")
    etree.SubElement(template, "DEV_PREFIX").text = "vd"
    for key, value in tags:
        documents.add_vector(template, "EC2_TAG", {"KEY": key, "VALUE": value})
    return etree.tostring(template, encoding="unicode")


def test_tags_added_one_by_one_all_survive_replace_mode():
    template = replace_mode(
        (documents.tags_added({"Name": "web", "team": "a"}), 1),
        (documents.tags_added({"x y": "", "ünï": "ç"}), 1),
        (documents.tags_added({"team": "b"}), 1),
    )
    assert documents.tags(template) == {"Name": "web", "team": "b", "x y": "", "ünï": "ç"}


def test_repeated_vectors_collapse_in_replace_mode_as_oned_did():
    template = replace_mode((legacy(("a", "1"), ("b", "2")), 0))
    assert documents.tags(template) == {"b": "2"}


def test_tag_vectors_for_an_allocate_have_one_name_per_tag():
    pairs = documents.tag_vectors({"a": "1", "A": "2", "a ": "3"})
    assert len({name for name, _ in pairs}) == 3
    allocated = etree.Element("TEMPLATE")
    for name, values in pairs:
        documents.add_vector(allocated, name, dict(values))
    template = replace_mode((etree.tostring(allocated, encoding="unicode"), 0))
    assert documents.tags(template) == {"A": "2", "a": "1", "a ": "3"}


def test_names_are_deterministic_valid_attribute_names():
    name = documents.TAGS.name("Name")
    assert name == documents.TAGS.name("Name") != documents.TAGS.name("name")
    assert name.startswith("EC2_TAG_") and name.replace("_", "").isalnum() and name.isupper()
    assert documents.ACCESS_KEYS.name("AKIAAAAAB2345") == "EC2_ACCESS_KEY_AKIAAAAAB2345"
    with pytest.raises(ValueError):
        documents.ACCESS_KEYS.name("AKIA/../X")


def test_a_tag_in_the_new_form_wins_over_an_old_vector_of_its_key():
    template = replace_mode(
        (legacy(("old", "before"), ("kept", "1")), 0),
        (documents.tags_added({"old": "after"}), 1),
    )
    assert documents.tags(template) == {"kept": "1", "old": "after"}


def test_without_removes_both_forms_of_a_key_and_keeps_the_rest():
    base = etree.fromstring(legacy(("old", "1"), ("a", "2")))
    for name, values in documents.tag_vectors({"old": "3", "b": "4"}):
        documents.add_vector(base, name, dict(values))
    remaining = documents.parse(documents.without_tags(base, {"old"}))
    assert documents.tags(remaining) == {"a": "2", "b": "4"}
    assert documents.text(remaining, "DEV_PREFIX") == "vd"
    assert documents.tags(documents.parse(documents.without_tags(base, {"a", "b", "old"}))) == {}


def test_items_are_read_by_their_key_field():
    template = replace_mode(
        (documents.ACCESS_KEYS.added([{"ID": "AKIA1", "SECRET": "s1"}]), 1),
        (documents.ACCESS_KEYS.added([{"ID": "AKIA2", "SECRET": "s2"}]), 1),
        (documents.KEY_PAIRS.added([{"NAME": "my key", "ID": "key-1"}]), 1),
    )
    keys = documents.ACCESS_KEYS.read(template)
    assert {k: documents.text(v, "SECRET") for k, v in keys.items()} == {
        "AKIA1": "s1",
        "AKIA2": "s2",
    }
    assert list(documents.KEY_PAIRS.read(template)) == ["my key"]
    assert documents.tags(template) == {}
    assert documents.ACCESS_KEYS.read(None) == {}


def test_rewritten_drops_what_is_asked_and_sets_the_new_attributes():
    source = documents.parse(
        "<TEMPLATE><EBS_VOLUME>YES</EBS_VOLUME><FORMAT>raw</FORMAT><DEV_PREFIX>sd</DEV_PREFIX>"
        "</TEMPLATE>"
    )
    for name, values in documents.tag_vectors({"from": "source"}):
        documents.add_vector(source, name, dict(values))
    written = documents.rewritten(
        source,
        lambda e: e.tag == "EBS_VOLUME" or documents.TAGS.holds(e),
        [("DEV_PREFIX", "vd"), ("EBS_SNAPSHOT", "YES"), *documents.tag_vectors({"k": "v"})],
    )
    template = documents.parse(written)
    assert [child.tag for child in template][:3] == ["FORMAT", "DEV_PREFIX", "EBS_SNAPSHOT"]
    assert documents.text(template, "DEV_PREFIX") == "vd"
    assert template.find("EBS_VOLUME") is None
    assert documents.tags(template) == {"k": "v"}

"""Reading OpenNebula XML documents and writing OpenNebula templates.

No module above `ec2gw.one` builds template strings by hand: values go through
`template_text`, which escapes them, so an EC2 parameter can never inject attributes.
EC2 items kept on templates (tags, access keys, key pairs) are read and written here
only, through `ItemVectors`: one attribute per item, as oned's replace-mode templates
(image, user) keep one attribute per name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from functools import lru_cache

from lxml import etree

from ec2gw.protocol.errors import EC2Error

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)

Element = etree._Element


def parse(document: str | bytes) -> Element:
    """Parse an XML document returned by OpenNebula."""
    if isinstance(document, str):
        document = document.encode()
    return etree.fromstring(document, _PARSER)


@lru_cache(maxsize=1024)
def _text_of(path: str) -> etree.XPath:
    # Plain str results: a "smart" string would keep the whole document alive.
    return etree.XPath(f"string({path})", smart_strings=False)


def text(element: Element, path: str, default: str = "") -> str:
    """The text at `path` below `element`, or `default` when absent or empty.

    A compiled XPath per path: it is read tens of times per VM in a DescribeInstances, and
    this is about twice as fast as `element.find`.
    """
    return _text_of(path)(element) or default


def integer(element: Element, path: str, default: int = 0) -> int:
    return to_integer(text(element, path), default)


def to_integer(value: str, default: int = 0) -> int:
    """An OpenNebula number as text (`"5"`, `"5.0"`) as an int, `default` if it is none."""
    try:
        return int(value)
    except ValueError:
        try:
            return int(float(value))
        except ValueError:
            return default


def number(element: Element, path: str, default: float = 0.0) -> float:
    try:
        return float(text(element, path))
    except ValueError:
        return default


def _quote(value: object) -> str:
    value = str(value)
    if "]]>" in value:
        raise EC2Error("InvalidParameterValue", "Value contains a forbidden sequence ']]>'")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"bad OpenNebula attribute name {name!r}")
    return name.upper()


TemplateValue = str | int | float | Mapping[str, object]


def template_text(attributes: Iterable[tuple[str, TemplateValue]]) -> str:
    """Render `(NAME, value)` pairs as an OpenNebula template.

    A mapping value becomes a vector attribute `NAME = [ K = "v", ... ]`; repeat a
    name to get several vectors (DISK, NIC, ...).
    """
    lines: list[str] = []
    for name, value in attributes:
        if isinstance(value, Mapping):
            inner = ", ".join(f"{_check_name(k)} = {_quote(v)}" for k, v in value.items())
            lines.append(f"{_check_name(name)} = [ {inner} ]")
        else:
            lines.append(f"{_check_name(name)} = {_quote(value)}")
    return "\n".join(lines)


def template_xml(template: Element) -> str:
    """Serialize a (modified) TEMPLATE element for `*.update`, which accepts XML."""
    return etree.tostring(template, encoding="unicode")


def add_vector(parent: Element, name: str, values: dict[str, str]) -> Element:
    """Append a vector attribute `name = [ K = v, ... ]` to a TEMPLATE element."""
    vector = etree.SubElement(parent, name)
    for key in sorted(values):
        etree.SubElement(vector, key).text = values[key]
    return vector


def with_vectors(template: Element | None, name: str, vectors: Iterable[dict[str, str]]) -> str:
    """The whole template as `<TEMPLATE>` XML with its `name` vectors replaced.

    Meant for `*.update` with append=0: a merge cannot remove vectors, so repeated vectors
    (security group rules) are changed by writing back the template read just before. Not
    for image and user templates, which keep one attribute per name (`ItemVectors`).
    """
    copy = etree.Element("TEMPLATE")
    for child in template if template is not None else []:
        if child.tag != name:
            copy.append(deepcopy(child))
    for values in vectors:
        add_vector(copy, name, values)
    return etree.tostring(copy, encoding="unicode")


def rewritten(
    template: Element | None,
    drop: Callable[[Element], bool],
    attributes: Iterable[tuple[str, TemplateValue]],
) -> str:
    """The whole template as `<TEMPLATE>` XML, without the children `drop` picks and those
    named in `attributes`, with `attributes` added: for `*.update(..., 0)` with a template
    read just before."""
    attributes = list(attributes)
    names = {_check_name(name) for name, _ in attributes}
    copy = etree.Element("TEMPLATE")
    for child in template if template is not None else []:
        if child.tag not in names and not drop(child):
            copy.append(deepcopy(child))
    for name, value in attributes:
        if isinstance(value, Mapping):
            add_vector(copy, _check_name(name), {_check_name(k): str(v) for k, v in value.items()})
        else:
            etree.SubElement(copy, _check_name(name)).text = str(value)
    return etree.tostring(copy, encoding="unicode")


# --- EC2 items kept one attribute per item -------------------------------------------------


@dataclass(frozen=True)
class ItemVectors:
    """One kind of EC2 item (tag, access key, key pair) kept on an OpenNebula template,
    each item a vector attribute of its own: `<PREFIX>_<suffix> = [ <KEY_FIELD> = ..., ... ]`.

    oned keeps image and user templates in replace mode: a template keeps one attribute per
    name, so repeated vectors of one name collapse to the last, at allocate and at update.
    One name per item survives that, and as the suffix follows from the item's key (its
    digest, or the key itself when it is already a valid name), a merge update
    (`*.update(..., 1)`) of one item replaces that item alone: concurrent additions of
    different items keep each other, and no template is read first.

    Earlier versions wrote repeated `<PREFIX>` vectors: they are still read (an item in the
    per-item form wins over one of the same key) and removed with the item.
    """

    prefix: str
    key_field: str
    digest: bool = True

    def name(self, key: str) -> str:
        """The attribute holding the item with this key."""
        if self.digest:
            return f"{self.prefix}_{hashlib.sha256(key.encode()).hexdigest()[:32].upper()}"
        if not key or not key.isascii() or not key.isalnum():
            raise ValueError(f"{key!r} cannot name an OpenNebula attribute")
        return f"{self.prefix}_{key.upper()}"

    def holds(self, element: Element) -> bool:
        """Whether a template's child is an item of this kind (either form)."""
        tag = element.tag
        return (tag == self.prefix or tag.startswith(self.prefix + "_")) and (
            element.find(self.key_field) is not None
        )

    def read(self, template: Element | None) -> dict[str, Element]:
        """The items of a TEMPLATE element by key, old repeated vectors included."""
        if template is None:
            return {}
        old: dict[str, Element] = {}
        new: dict[str, Element] = {}
        for element in template.iterchildren(etree.Element):
            if self.holds(element):
                key = text(element, self.key_field)
                if key:
                    (old if element.tag == self.prefix else new)[key] = element
        return {**old, **new}

    def entries(self, items: Iterable[Mapping[str, str]]) -> list[tuple[str, Mapping[str, str]]]:
        """`(NAME, vector)` pairs for `template_text`, e.g. in an allocate's template."""
        return [(self.name(item[self.key_field]), item) for item in items]

    def added(self, items: Iterable[Mapping[str, str]]) -> str:
        """`<TEMPLATE>` XML adding (or replacing) these items, for `*.update(..., 1)`."""
        template = etree.Element("TEMPLATE")
        for name, values in self.entries(items):
            add_vector(template, name, dict(values))
        return etree.tostring(template, encoding="unicode")

    def without(self, template: Element | None, keys: Iterable[str]) -> str:
        """The whole template as `<TEMPLATE>` XML without the items of these keys (in
        either form), for `*.update(..., 0)` with the template read just before: a merge
        cannot remove an attribute."""
        doomed = set(keys)
        copy = etree.Element("TEMPLATE")
        for child in template if template is not None else []:
            if not (self.holds(child) and text(child, self.key_field) in doomed):
                copy.append(deepcopy(child))
        return etree.tostring(copy, encoding="unicode")


# EC2 tags: `EC2_TAG_<digest of the key> = [ KEY, VALUE ]`, so any key (case, spaces,
# unicode) survives; attribute names could not hold it. Earlier versions wrote repeated
# `EC2_TAG` vectors (TAG_ATTRIBUTE), still read; on VM and network templates, which are not
# in replace mode, repeated EC2_TAG vectors also still keep every tag.
TAG_ATTRIBUTE = "EC2_TAG"
TAGS = ItemVectors(TAG_ATTRIBUTE, "KEY")


def tags(template: Element | None) -> dict[str, str]:
    """The EC2 tags stored in a TEMPLATE / USER_TEMPLATE element, by key."""
    items = TAGS.read(template)
    return {key: text(items[key], "VALUE") for key in sorted(items)}


def _tag_items(new_tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"KEY": key, "VALUE": value} for key, value in new_tags.items()]


def tag_vectors(new_tags: Mapping[str, str]) -> list[tuple[str, Mapping[str, str]]]:
    """The tags as `(NAME, vector)` pairs for `template_text` (allocate, instantiate)."""
    return TAGS.entries(_tag_items(new_tags))


def tags_added(new_tags: Mapping[str, str]) -> str:
    """`<TEMPLATE>` XML setting these tags, for `*.update(..., 1)` (merge)."""
    return TAGS.added(_tag_items(new_tags))


def without_tags(template: Element | None, keys: Iterable[str]) -> str:
    """The whole template without the tags of these keys, for `*.update(..., 0)`."""
    return TAGS.without(template, keys)


# Access keys on the user's TEMPLATE: `EC2_ACCESS_KEY_<key id> = [ ID, SECRET, ... ]`.
ACCESS_KEYS = ItemVectors("EC2_ACCESS_KEY", "ID", digest=False)
# Key pairs on the user's TEMPLATE: `EC2_KEY_PAIR_<digest of the name> = [ NAME, ... ]`.
KEY_PAIRS = ItemVectors("EC2_KEY_PAIR", "NAME")


# Deletes are asynchronous in oned: `one.image.delete` leaves the image in DELETE and
# `one.vn.delete` the network in LOCK_DELETE until the driver has removed it. Once a
# delete is accepted the object is gone for EC2 clients.
IMAGE_DELETE = 7  # Image STATE
NETWORK_LOCK_DELETE = 3  # VirtualNetwork STATE


def image_deleted(image: Element) -> bool:
    """The IMAGE (info or pool body) is being deleted."""
    return integer(image, "STATE", -1) == IMAGE_DELETE


def network_deleted(vnet: Element) -> bool:
    """The VNET (info or pool body) is being deleted."""
    return integer(vnet, "STATE", -1) == NETWORK_LOCK_DELETE

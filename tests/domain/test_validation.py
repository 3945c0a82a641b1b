"""The input rules of app/naming.py: what Incus allows, cut to what LINSTOR and both caches can hold."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable

import jsonschema  # type: ignore[import-untyped]  # no stubs installed; only Draft202012Validator is used
import pydantic
import pytest

from app.api.idempotency import parse_key
from app.api.inputs import input_schemas
from app.api.schemas import SIZE_STRING_RE, VolumeCreate
from app.errors import InvalidInput
from app.identity import VolumeType
from app.naming import (
    LINSTOR_NAME_RE,
    MAX_PROP_KEY,
    MAX_SNAPSHOT_NAME,
    MAX_VOLUME_BYTES,
    PropertyKeys,
    round_size_kib,
    validate_description,
    validate_project,
    validate_snapshot_name,
    validate_volume_name,
)
from app.settings import NAMESPACE_RE

# every C0 control, DEL and every C1 control
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]


def refused(check: Callable[[str], None], value: str) -> str:
    """The code `check` refuses `value` with."""
    with pytest.raises(InvalidInput) as raised:
        check(value)
    return raised.value.code


def accepted(check: Callable[[str], None], value: str) -> bool:
    """Whether `check` lets `value` through."""
    try:
        check(value)
    except InvalidInput:
        return False
    return True


def custom_name(name: str) -> None:
    """A custom volume's name (Incus's ValidVolumeName and ours)."""
    validate_volume_name(VolumeType.CUSTOM, name)


@pytest.mark.parametrize(
    ("check", "code"),
    [
        (validate_project, "invalid_project"),
        (validate_description, "invalid_description"),
        (validate_snapshot_name, "invalid_name"),
        (custom_name, "invalid_name"),
    ],
    ids=["project", "description", "snapshot", "custom-volume"],
)
def test_no_control_character_and_no_lone_surrogate_anywhere(check: Callable[[str], None], code: str) -> None:
    """NUL broke a PostgreSQL cache for good; a lone surrogate cannot be encoded for LINSTOR at all."""
    for char in [*CONTROLS, "\ud800", "\udfff"]:
        assert refused(check, f"a{char}b") == code, repr(char)


def test_projects_follow_incus_then_our_stores() -> None:
    for project in ("default", "foo-bar", "projét", "\U0001f600" * 255):
        validate_project(project)
    for project in ("", "a/b", "a b", "a_b", "a'b", 'a"b', "*", ".", "..", "p" * 256):
        assert refused(validate_project, project) == "invalid_project", project


def test_descriptions_are_one_line_of_at_most_4096_utf16_units() -> None:
    for description in ("web server", "x" * 4096, "\U0001f600" * 2048, "é" * 4096):
        validate_description(description)
    for description in ("x" * 4097, "\U0001f600" * 2049, "two\nlines"):
        assert refused(validate_description, description) == "invalid_description"


@pytest.mark.parametrize("name", ["a*b", "a=b", "a,b", "snäp", "a b", "a/b", "a\\b", ".", "..", ""])
def test_snapshot_names_incus_or_a_linstor_key_refuses(name: str) -> None:
    assert refused(validate_snapshot_name, name) == "invalid_name"


def test_snapshot_names_may_use_the_rest_of_printable_ascii() -> None:
    validate_snapshot_name("snap0")
    validate_snapshot_name("2024-01-02_03:04:05.x+y~(a)[b]{c}!#$%&'@^`|<>?;\"")
    validate_snapshot_name("x" * MAX_SNAPSHOT_NAME)
    assert refused(validate_snapshot_name, "x" * (MAX_SNAPSHOT_NAME + 1)) == "invalid_name"


def test_the_longest_snapshot_name_fits_a_key_under_the_longest_namespace() -> None:
    """The bound follows the settings' namespace rule: if that grows, this fails rather than LINSTOR."""
    longest = "n" * 64
    assert NAMESPACE_RE.fullmatch(longest)
    assert not NAMESPACE_RE.fullmatch(longest + "n")
    keys = PropertyKeys(longest)
    assert max(len(k) for k in keys.snapshot_keys("x" * MAX_SNAPSHOT_NAME)) == MAX_PROP_KEY


def _pool(name: str) -> None:
    if not LINSTOR_NAME_RE.fullmatch(name):
        raise InvalidInput("invalid_pool", name)


def _key(text: str) -> None:
    parse_key([text.encode("latin-1")])


def _size(text: str) -> None:
    """Only the form: the number a unit string stands for is bounded in words, not in the schema."""
    try:
        VolumeCreate(name="c1", type=VolumeType.CONTAINER, size=text)
    except pydantic.ValidationError as exc:
        raise InvalidInput("invalid_request", str(exc)) from exc


SAMPLE_CHARS = [chr(c) for c in (*range(0x300), 0x2028, 0xFEFF, 0xE000, 0xFFFF, 0x1F600, 0x10FFFF)]
EDGES = ["", ".", "..", "...", "-a", "a-", "a-b", "123", "1a", "abc\n", "\nabc", "a\nb", "*", '""', '"a"']


@pytest.mark.parametrize(
    ("component", "check", "longest"),
    [
        ("ProjectName", validate_project, 255),
        ("Description", validate_description, 4096),
        ("SnapshotName", validate_snapshot_name, MAX_SNAPSHOT_NAME),
        ("InstanceName", lambda n: validate_volume_name(VolumeType.CONTAINER, n), 63),
        ("ImageFingerprint", lambda n: validate_volume_name(VolumeType.IMAGE, n), 64),
        ("CustomVolumeName", custom_name, 200),
        ("PoolName", _pool, 48),
        ("IdempotencyKey", _key, 255),
    ],
)
def test_the_documented_rules_refuse_exactly_what_the_checks_refuse(
    component: str, check: Callable[[str], None], longest: int
) -> None:
    """A JSON Schema validator reading openapi.json's rule agrees with the check, char for char and at the
    edges (Python's `$` also matched before a final newline: the patterns take that back)."""
    validator = jsonschema.Draft202012Validator(input_schemas()[component])
    samples = [*EDGES, "x" * longest, "x" * (longest + 1), "a" * 64, "f" * 64, "f" * 63 + "g"]
    samples += [s for c in SAMPLE_CHARS for s in (c, f"a{c}b")]
    if component == "IdempotencyKey":  # an HTTP field value: Latin-1, no whitespace around it (RFC 9110 §5.5)
        samples = [s for s in samples if s == s.strip() and s.isascii()]
    for sample in samples:
        assert validator.is_valid(sample) == accepted(check, sample), repr(sample[:20])


def test_custom_names_refuse_the_invisible_categories_of_unicode_14() -> None:
    """The fixed class of app/naming.py is Python 3.11's Cc, Cf, Cs, Zs, Zl and Zp, and nothing else:
    isprintable() also refused the unassigned code points, whose set changes with the Python, and the
    private-use ones."""
    invisible = {"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"}
    assert unicodedata.unidata_version == "14.0.0"
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        refused_here = not accepted(custom_name, f"a{char}b")
        assert refused_here == (unicodedata.category(char) in invisible or char in "/\\"), hex(code)


def test_size_strings_follow_the_documented_form() -> None:
    validator = jsonschema.Draft202012Validator({"pattern": SIZE_STRING_RE.pattern})
    samples = ["10GiB", "10 gib", "1.5TB", ".5MiB", "5.", "7", "+7k", "-5", "5XB", "GiB", "", "1e3", "5GiB\n"]
    for sample in [*samples, *(f"1{c}" for c in SAMPLE_CHARS)]:
        documented = validator.is_valid(sample)
        assert documented == accepted(_size, sample) or sample.startswith("-"), repr(sample)
    assert not validator.is_valid("-5")  # read, so that the domain says "positive"; documented as refused


def test_sizes_stop_at_linstors_maximum_volume_size() -> None:
    """DRBD's 1 PiB (linstor-server MetaData.DRBD_MAX_kiB = 1 << 40 KiB), checked before any rounding."""
    assert MAX_VOLUME_BYTES == 1 << 50
    assert round_size_kib(MAX_VOLUME_BYTES) == 1 << 40
    assert round_size_kib(1) == 4096  # Incus's 4 MiB minimum
    for size in (MAX_VOLUME_BYTES + 1, 2**64, 10**30, 10**5000):
        with pytest.raises(InvalidInput) as raised:
            round_size_kib(size)
        assert raised.value.code == "invalid_size"
        assert "1 PiB" in raised.value.detail

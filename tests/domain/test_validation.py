"""The input rules of app/naming.py: what Incus allows, cut to what LINSTOR and both caches can hold."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from app.api.schemas import NO_CONTROL_PATTERN, SNAPSHOT_NAME_PATTERN
from app.errors import InvalidInput
from app.identity import VolumeType
from app.naming import (
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


def test_the_documented_patterns_say_what_the_rules_do() -> None:
    """openapi.json documents the rules as patterns (app/api/schemas.py); they agree char for char."""
    snapshot, no_control = re.compile(SNAPSHOT_NAME_PATTERN), re.compile(NO_CONTROL_PATTERN)
    for code in range(0x300):
        char = chr(code)
        name = f"a{char}b"
        assert bool(snapshot.fullmatch(name)) == accepted(validate_snapshot_name, name), repr(char)
        assert bool(no_control.fullmatch(name)) == accepted(validate_description, name), repr(char)


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

"""Names: randomized LINSTOR names, Incus storage-name encoding and decoding, and validation.

Incus stores `Aux/Incus/name = <prefix><storage name>` where the storage name embeds the project
(incus-linstor-driver.md §2.3): instances are `name` in project `default` and `<project>_<name>` elsewhere
(Incus's InstanceParts splits at the last `_`), custom volumes are always `<project>_<name>`
(StorageVolumeParts splits at the first `_`), images are their fingerprint in project `default`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from app.errors import InvalidInput
from app.identity import ContentType, VolumeKey, VolumeRecord, VolumeType

DEFAULT_PROJECT = "default"


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule over a whole string: a pattern and a length range. The check runs it and the OpenAPI document
    states it (app/api/inputs.py): one definition for both. The patterns have no lookarounds but the
    newline guard, and leave lengths to the range: schemathesis draws from them fast."""

    regex: re.Pattern[str]
    low: int
    high: int

    @property
    def pattern(self) -> str:
        """The regular expression, as Python's re and ECMA-262 (JSON Schema) read it alike."""
        return self.regex.pattern

    def fullmatch(self, value: str) -> bool:
        """Whether `value` keeps the rule."""
        return self.low <= len(value) <= self.high and self.regex.fullmatch(value) is not None


def whole(body: str, low: int, high: int) -> Rule:
    """`body` as a rule over whole strings of `low` to `high` characters.

    Python's `$` also matches before a final newline; `(?!\\n)` takes that back, so that a JSON Schema
    validator, which searches for the pattern, refuses what the check refuses.
    """
    return Rule(re.compile(f"^(?:{body})$(?!\\n)"), low, high)


def _not_dots(allowed: str, no_dot: str) -> str:
    """Strings of `allowed` characters other than `.` and `..` (`no_dot`: `allowed` without the dot)."""
    return f"(?:{no_dot}|\\.{no_dot}|\\.\\.{allowed}){allowed}*"


# at least one letter, starting with a letter or `_`
LINSTOR_NAME_RE = whole(r"(?:[A-Za-z]|_[0-9_-]*[A-Za-z])[A-Za-z0-9_-]*", 2, 48)
# validate.IsHostname in Incus (instance names): letters, digits and `-`, not first or last, not only digits
HOSTNAME_RE = whole(r"[0-9]*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?|[0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]", 1, 63)
FINGERPRINT_RE = whole(r"[0-9a-f]{64}", 64, 64)
MAX_PROP_VALUE = 4096  # LINSTOR's SQL backends store values in VARCHAR(4096) (linstor-rest-api.md §4.2)
MAX_PROP_KEY = 255
# linstor-server's MetaData.DRBD_MAX_kiB (1 << 40, 1 PiB): the controller refuses a larger volume definition
# ("Valid sizes range from 4 to 1099511627776", controller-api.jsonl #153), and every Incus volume is DRBD.
MAX_VOLUME_KIB = 1 << 40
MAX_VOLUME_BYTES = MAX_VOLUME_KIB * 1024
# A snapshot name is the tail of the key `Aux/<namespace>/snapshot-name/<name>`: this is the longest that fits
# LINSTOR's 255 characters under the longest namespace the settings allow (64), so that a name valid on one
# replica is valid on every replica, whatever its namespace.
MAX_SNAPSHOT_NAME = MAX_PROP_KEY - len("Aux/") - 64 - len("/snapshot-name/")
# Incus sets no length for projects; ours keeps the cache's identity index entry (pool, project, type,
# name) far below PostgreSQL's btree limit of 2704 bytes even in 4-byte UTF-8, and `Aux/<ns>/name` far
# below LINSTOR's 4096.
MAX_PROJECT = 255
# C0, DEL and C1 controls, and lone surrogates (JSON's "\ud800" decodes to one; UTF-8 cannot encode it):
# PostgreSQL text refuses NUL, and a control character in a label can forge lines in logs and terminals.
# Regex dialects over Unicode scalar values (Rust's, ECMA-262's u mode) have no lone surrogates to name: the
# OpenAPI document states each rule without SURROGATES (app/api/inputs.py)
SURROGATES = r"\ud800-\udfff"
_UNSTORABLE = rf"\u0000-\u001f\u007f-\u009f{SURROGATES}"
# the length is LINSTOR's, in UTF-16 code units (validate_description): as many code points is a bound
DESCRIPTION_RE = whole(f"[^{_UNSTORABLE}]*", 0, MAX_PROP_VALUE)
# Incus's project rules (no slashes, spaces, underscores or quotes; not `*`, `.` or `..`), and ours
_PROJECT_CHAR = f"/ _'\"{_UNSTORABLE}"
PROJECT_RE = whole(
    f"(?:[^*.{_PROJECT_CHAR}]|\\*[^{_PROJECT_CHAR}]|\\.[^.{_PROJECT_CHAR}]|\\.\\.[^{_PROJECT_CHAR}])"
    f"[^{_PROJECT_CHAR}]*",
    1,
    MAX_PROJECT,
)
# Printable ASCII without space, `/`, `\` (Incus), `*` (Incus's instancetype.ValidSnapName), `=` and `,`:
# those separate a props filter term (`key=value`, split at the first `=` by LINSTOR's ReadOnlyProps.contains)
# and lists of them, so a key holding either could be written but not named in a filter; not `.` or `..`.
SNAPSHOT_NAME_RE = whole(_not_dots(r"[!-)+\-.0-<>-\[\]-~]", r"[!-)+\-0-<>-\[\]-~]"), 1, MAX_SNAPSHOT_NAME)
MAX_PLAIN_NAME = 200
# What no name may hold: Unicode's controls (Cc), format characters (Cf), separators (Zs, Zl, Zp) and
# surrogates (Cs), as of Unicode 14 (Python 3.11). A fixed list, not the interpreter's Unicode database, so
# that replicas on different Pythons refuse the same names. Unassigned and private-use code points are
# allowed: they have no look to hide behind and round-trip as any other character (naming the 137,000
# private-use ones made every generator of names from the OpenAPI document crawl). BMP characters escaped,
# the others literal (Python's re and ECMA-262 share no escape for them).
_INVISIBLE = (
    r"\u0000-\u0020\u007f-\u00a0\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u1680\u180e"
    r"\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f" + SURROGATES
)
# Custom volume names: Incus's ValidVolumeName (not empty, no slashes, the snapshot delimiter, nor
# backslashes), and ours: at most 200 characters, not `.` or `..`, no whitespace or invisible characters,
# which an orchestrator cannot round-trip through a URL path or a terminal.
PLAIN_NAME_RE = whole(_not_dots(f"[^/\\\\{_INVISIBLE}]", f"[^./\\\\{_INVISIBLE}]"), 1, MAX_PLAIN_NAME)

# Content types Incus allows per volume type (the RD carries the block part's type for VMs).
ALLOWED_CONTENT = {
    VolumeType.CONTAINER: {ContentType.FILESYSTEM},
    VolumeType.VIRTUAL_MACHINE: {ContentType.BLOCK},
    VolumeType.IMAGE: {ContentType.FILESYSTEM, ContentType.BLOCK},
    VolumeType.CUSTOM: {ContentType.FILESYSTEM, ContentType.BLOCK, ContentType.ISO},
}


def random_linstor_name(prefix: str) -> str:
    """`<prefix><uuid4 hex>`, as Incus's generateUUIDWithPrefix (used for RDs and snapshots alike)."""
    return prefix + uuid.uuid4().hex


def validate_project(project: str) -> None:
    """Incus's project name rules: no slashes, spaces, underscores or quotes; not `*`, `.` or `..`."""
    if not PROJECT_RE.fullmatch(project):
        raise InvalidInput("invalid_project", _project_problem(project))


def _project_problem(project: str) -> str:
    """Which part of PROJECT_RE `project` fails, in Incus's words."""
    if not project:
        return "Project name cannot be empty"
    if len(project) > MAX_PROJECT:
        return f"Project names may be at most {MAX_PROJECT} characters long"
    for bad, what in (
        ("/", "slashes"),
        (" ", "spaces"),
        ("_", "underscores"),
        ("'", "quotes"),
        ('"', "quotes"),
    ):
        if bad in project:
            return f"Project names may not contain {what}: {project!r}"
    if project in ("*", ".", ".."):
        return f"Invalid project name {project!r}"
    # ours, as the length: Incus allows them, our stores do not
    return f"Project names may not contain control characters or lone surrogates: {project!r}"


def validate_description(description: str) -> None:
    """A description: one line of text that fits a LINSTOR property value (4096 UTF-16 code units)."""
    if not DESCRIPTION_RE.regex.fullmatch(description):
        raise InvalidInput(
            "invalid_description",
            "Descriptions may not contain control characters (newlines, tabs, NUL, ...) or lone surrogates",
        )
    # LINSTOR counts a value's length as Java does, in UTF-16 code units (an emoji counts twice); the check
    # above made the encoding safe. No JSON Schema keyword counts so: the document says it in words.
    if len(description.encode("utf-16-le")) // 2 > MAX_PROP_VALUE:
        raise InvalidInput(
            "invalid_description",
            f"Descriptions may be at most {MAX_PROP_VALUE} characters (UTF-16 code units)",
        )


def volume_name_re(vtype: VolumeType) -> Rule:
    """The rule of a volume name of type `vtype`, as Incus has it."""
    if vtype in (VolumeType.CONTAINER, VolumeType.VIRTUAL_MACHINE):
        return HOSTNAME_RE
    if vtype is VolumeType.IMAGE:
        return FINGERPRINT_RE
    return PLAIN_NAME_RE


def validate_volume_name(vtype: VolumeType, name: str) -> None:
    """Validate a volume name as Incus does for its type."""
    if volume_name_re(vtype).fullmatch(name):
        return
    if vtype in (VolumeType.CONTAINER, VolumeType.VIRTUAL_MACHINE):
        detail = _hostname_problem(name)
    elif vtype is VolumeType.IMAGE:
        detail = f"Image volume names are SHA-256 fingerprints (64 lowercase hex): {name!r}"
    else:
        detail = _plain_name_problem("volume", name)
    raise InvalidInput("invalid_name", detail)


def validate_snapshot_name(name: str) -> None:
    """Snapshot names: Incus's rules, in printable ASCII without `*`, `=` or `,`, at most 172 characters."""
    if SNAPSHOT_NAME_RE.fullmatch(name):
        return
    raise InvalidInput("invalid_name", _snapshot_name_problem(name))


def _snapshot_name_problem(name: str) -> str:
    """Which part of SNAPSHOT_NAME_RE `name` fails."""
    if not PLAIN_NAME_RE.fullmatch(name):
        return _plain_name_problem("snapshot", name)
    # printable ASCII: LINSTOR measures a key in UTF-16 code units and we in code points; in ASCII they agree,
    # and no Unicode normalisation can make two names one key
    if not name.isascii():
        return f"Invalid snapshot name {name!r}: Only ASCII characters are allowed"
    if bad := sorted(set(name) & set("*=,")):
        return f"Invalid snapshot name {name!r}: Cannot contain {' or '.join(map(repr, bad))}"
    return (
        f"Invalid snapshot name: longer than {MAX_SNAPSHOT_NAME} characters (it is part of a LINSTOR "
        "property key)"
    )


def _hostname_problem(name: str) -> str:
    """Which part of HOSTNAME_RE (Incus's validate.IsHostname) `name` fails, in Incus's words."""
    if not 1 <= len(name) <= 63:
        return f"Name must be 1-63 characters long: {name!r}"
    if name.startswith("-"):
        return f'Name must not start with "-" character: {name!r}'
    if name.endswith("-"):
        return f'Name must not end with "-" character: {name!r}'
    if name.isdigit():
        return f"Name cannot be a number: {name!r}"
    return f"Name can only contain alphanumeric and hyphen characters: {name!r}"


def _plain_name_problem(what: str, name: str) -> str:
    """Which part of the plain name rule `name` fails."""
    if not name:
        return f"Invalid {what} name: Cannot be empty"
    if len(name) > MAX_PLAIN_NAME:  # first, so that no message below quotes a huge name
        return f"Invalid {what} name: longer than {MAX_PLAIN_NAME} characters"
    if "\\" in name:
        return f"Invalid {what} name {name!r}: Cannot contain backslashes"
    if "/" in name:
        return f"Invalid {what} name {name!r}: Cannot contain slashes"
    if name in (".", ".."):
        return f"Invalid {what} name {name!r}"
    return f"Invalid {what} name {name!r}: Cannot contain whitespace, control or format characters"


def storage_name(vtype: VolumeType, project: str, name: str) -> str:
    """Incus's storage name of a volume (project.Instance / project.StorageVolume / image fingerprint)."""
    if vtype is VolumeType.IMAGE:
        return name
    if vtype is VolumeType.CUSTOM or project != DEFAULT_PROJECT:
        return f"{project}_{name}"
    return name


def split_storage_name(vtype: VolumeType, stored: str) -> tuple[str, str] | None:
    """(project, name) from a storage name by Incus's rules; None when it cannot be one of Incus's."""
    if "/" in stored or not stored:  # snapshot-mount temporary RDs are named <parent>/<snap> (§5.6)
        return None
    if vtype is VolumeType.IMAGE:
        return DEFAULT_PROJECT, stored
    if vtype is VolumeType.CUSTOM:
        project, sep, name = stored.partition("_")  # StorageVolumeParts: first `_`
        return (project, name) if sep and project and name else None
    project, sep, name = stored.rpartition("_")  # InstanceParts: last `_`
    if not sep:
        return DEFAULT_PROJECT, stored
    return (project, name) if project and name else None


@dataclass(frozen=True)
class PropertyKeys:
    """The Aux property keys of one namespace (`Incus` by default)."""

    namespace: str

    @property
    def root(self) -> str:
        """`Aux/<ns>/`."""
        return f"Aux/{self.namespace}/"

    @property
    def name(self) -> str:
        """`Aux/<ns>/name`: prefix + storage name."""
        return self.root + "name"

    @property
    def type(self) -> str:
        """`Aux/<ns>/type`: containers, virtual-machines, images, custom."""
        return self.root + "type"

    @property
    def content_type(self) -> str:
        """`Aux/<ns>/content-type`."""
        return self.root + "content-type"

    @property
    def project(self) -> str:
        """`Aux/<ns>/project`: our addition, so the project never has to be parsed back."""
        return self.root + "project"

    @property
    def description(self) -> str:
        """`Aux/<ns>/description`: our addition, only written when a description is given."""
        return self.root + "description"

    @property
    def snapshot_prefix(self) -> str:
        """`Aux/<ns>/snapshot-name/`: Incus's code writes this (incus-linstor-driver.md §2.5)."""
        return self.root + "snapshot-name/"

    @property
    def doc_snapshot_prefix(self) -> str:
        """`Aux/<ns>/SnapshotName/`: what Incus's documentation (and our seed) shows; read, never written."""
        return self.root + "SnapshotName/"

    @property
    def snapshot_namespaces(self) -> list[str]:
        """Both mapping namespaces, to drop inherited snapshot keys with (`delete_namespaces`)."""
        return [self.snapshot_prefix.rstrip("/"), self.doc_snapshot_prefix.rstrip("/")]

    def snapshot(self, incus_name: str) -> str:
        """The mapping key of one snapshot, as written."""
        return self.snapshot_prefix + incus_name

    def snapshot_keys(self, incus_name: str) -> list[str]:
        """Every key that may map `incus_name` (to delete on rename and delete)."""
        return [self.snapshot_prefix + incus_name, self.doc_snapshot_prefix + incus_name]


class AuxCodec:
    """Encodes volume identities into Aux properties and decodes resource definitions back."""

    def __init__(self, prefix: str, namespace: str) -> None:
        self.prefix = prefix
        self.keys = PropertyKeys(namespace)

    def aux_name(self, key: VolumeKey) -> str:
        """The `Aux/<ns>/name` value of a volume."""
        return self.prefix + storage_name(key.type, key.project, key.name)

    def lookup_filters(self, key: VolumeKey) -> list[str]:
        """The props filters Incus's lookup sends: name and type (incus-linstor-driver.md §3.1)."""
        return [f"{self.keys.name}={self.aux_name(key)}", f"{self.keys.type}={key.type.linstor}"]

    def volume_props(
        self, key: VolumeKey, content_type: ContentType, description: str | None = None
    ) -> dict[str, str]:
        """The properties written on a new volume's resource definition: Incus's, plus the project."""
        return {
            **self.identity_props(key, content_type, description),
            # setResourceDefinitionProperties and setResourceDefinitionExactSize (§2.2): Incus needs both
            # on every RD it uses (live migration; exact sizes)
            "DrbdOptions/Net/allow-two-primaries": "yes",
            "DrbdOptions/ExactSize": "true",
        }

    def identity_props(
        self, key: VolumeKey, content_type: ContentType, description: str | None = None
    ) -> dict[str, str]:
        """Only the Aux identity of a volume: what may be rewritten on an RD whose resources are deployed.

        A real controller refuses `DrbdOptions/ExactSize=true` while resources are deployed
        (service-traffic.jsonl #156), so a restored RD keeps the DRBD options it inherited from the
        snapshot and gets only its identity rewritten.
        """
        props = {
            self.keys.name: self.aux_name(key),
            self.keys.type: key.type.linstor,
            self.keys.content_type: content_type.value,
            self.keys.project: key.project,
        }
        if description:
            props[self.keys.description] = description
        for k, v in props.items():
            if len(v) > MAX_PROP_VALUE:
                raise InvalidInput("invalid_name", f"{k} would be longer than {MAX_PROP_VALUE} characters")
        return props

    def check_snapshot_key(self, incus_name: str) -> None:
        """Refuse snapshot names whose mapping key LINSTOR would reject (keys are at most 255 chars)."""
        if len(self.keys.snapshot(incus_name)) > MAX_PROP_KEY:
            raise InvalidInput(
                "invalid_name", f"Snapshot name too long for a LINSTOR property key: {incus_name!r}"
            )

    def decode(
        self, pool: str, rd_name: str, props: dict[str, str], sizes_kib: tuple[int, ...] = ()
    ) -> VolumeRecord | None:
        """The volume a resource definition holds, or None when its props are not a volume of ours."""
        keys = self.keys
        stored_name = props.get(keys.name)
        vtype = VolumeType.from_linstor(props.get(keys.type, ""))
        raw_content = props.get(keys.content_type)
        if (
            stored_name is None
            or vtype is None
            or raw_content is None
            or not stored_name.startswith(self.prefix)
        ):
            return None
        try:
            content = ContentType(raw_content)
        except ValueError:
            return None
        stored = stored_name[len(self.prefix) :]
        project = props.get(keys.project)
        if project is not None:
            expected = storage_name(vtype, project, "")
            if "/" in stored or not stored.startswith(expected) or len(stored) == len(expected):
                return None
            name = stored[len(expected) :]
        else:
            parts = split_storage_name(vtype, stored)
            if parts is None:
                return None
            project, name = parts
        snapshots: dict[str, str] = {}
        # the documented key first, so that the key Incus's code writes wins when both exist
        for prefix in (keys.doc_snapshot_prefix, keys.snapshot_prefix):
            snapshots.update(
                {k[len(prefix) :]: v for k, v in props.items() if k.startswith(prefix) and k != prefix}
            )
        return VolumeRecord(
            key=VolumeKey(pool=pool, project=project, type=vtype, name=name),
            rd_name=rd_name,
            content_type=content,
            description=props.get(keys.description),
            volume_sizes_kib=sizes_kib,
            snapshots=snapshots,
        )


def round_size_kib(size_bytes: int) -> int:
    """Incus's roundVolumeBlockSizeBytes (at least 4 MiB, up to an 8 KiB boundary) in KiB; at most 1 PiB."""
    # refused here, before anything reaches LINSTOR: past 64 bits it could not even be sent (the JSON encoder
    # raised, a 500); the bound is 8192-aligned, so checking before rounding is the same
    if size_bytes > MAX_VOLUME_BYTES:
        # never the value itself in the message: it may have thousands of digits
        raise InvalidInput(
            "invalid_size",
            f"size is larger than LINSTOR's maximum volume size, 1 PiB ({MAX_VOLUME_BYTES} bytes, "
            f"{MAX_VOLUME_KIB} KiB)",
        )
    size = max(size_bytes, 4 * 1024 * 1024)
    size = -(-size // 8192) * 8192
    return size // 1024

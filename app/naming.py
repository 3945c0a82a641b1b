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
LINSTOR_NAME_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z_][A-Za-z0-9_-]{1,47}$")
# validate.IsHostname in Incus (instance names)
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9-]{1,63}$")
_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")
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
_UNSTORABLE_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Incus's instancetype.ValidSnapName refuses `*` (beside spaces and slashes); `=` and `,` separate a props
# filter term (`key=value`, split at the first `=` by LINSTOR's ReadOnlyProps.contains) and lists of them,
# so a key holding either could be written but not named in a filter.
_SNAPSHOT_FORBIDDEN = "*=,"

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
    if not project:
        raise InvalidInput("invalid_project", "Project name cannot be empty")
    if len(project) > MAX_PROJECT:
        raise InvalidInput("invalid_project", f"Project names may be at most {MAX_PROJECT} characters long")
    for bad, what in (
        ("/", "slashes"),
        (" ", "spaces"),
        ("_", "underscores"),
        ("'", "quotes"),
        ('"', "quotes"),
    ):
        if bad in project:
            raise InvalidInput("invalid_project", f"Project names may not contain {what}: {project!r}")
    if project in ("*", ".", ".."):
        raise InvalidInput("invalid_project", f"Invalid project name {project!r}")
    if _UNSTORABLE_RE.search(project):  # ours, as the length: Incus allows them, our stores do not
        raise InvalidInput(
            "invalid_project",
            f"Project names may not contain control characters or lone surrogates: {project!r}",
        )


def validate_description(description: str) -> None:
    """A description: one line of text that fits a LINSTOR property value (4096 UTF-16 code units)."""
    if _UNSTORABLE_RE.search(description):
        raise InvalidInput(
            "invalid_description",
            "Descriptions may not contain control characters (newlines, tabs, NUL, ...) or lone surrogates",
        )
    # LINSTOR counts a value's length as Java does, in UTF-16 code units (an emoji counts twice); the check
    # above made the encoding safe
    if len(description.encode("utf-16-le")) // 2 > MAX_PROP_VALUE:
        raise InvalidInput(
            "invalid_description",
            f"Descriptions may be at most {MAX_PROP_VALUE} characters (UTF-16 code units)",
        )


def validate_volume_name(vtype: VolumeType, name: str) -> None:
    """Validate a volume name as Incus does for its type."""
    if vtype in (VolumeType.CONTAINER, VolumeType.VIRTUAL_MACHINE):
        _validate_hostname(name)
    elif vtype is VolumeType.IMAGE:
        if not _FINGERPRINT_RE.fullmatch(name):
            raise InvalidInput(
                "invalid_name", f"Image volume names are SHA-256 fingerprints (64 lowercase hex): {name!r}"
            )
    else:
        _validate_plain_name("volume", name)


def validate_snapshot_name(name: str) -> None:
    """Snapshot names: Incus's rules, in printable ASCII without `*`, `=` or `,`, at most 172 characters."""
    _validate_plain_name("snapshot", name)
    # printable ASCII: LINSTOR measures a key in UTF-16 code units and we in code points; in ASCII they agree,
    # and no Unicode normalisation can make two names one key
    if not name.isascii():
        raise InvalidInput(
            "invalid_name", f"Invalid snapshot name {name!r}: Only ASCII characters are allowed"
        )
    if bad := sorted(set(name) & set(_SNAPSHOT_FORBIDDEN)):
        raise InvalidInput(
            "invalid_name", f"Invalid snapshot name {name!r}: Cannot contain {' or '.join(map(repr, bad))}"
        )
    if len(name) > MAX_SNAPSHOT_NAME:
        raise InvalidInput(
            "invalid_name",
            f"Invalid snapshot name: longer than {MAX_SNAPSHOT_NAME} characters (it is part of a LINSTOR "
            "property key)",
        )


def _validate_hostname(name: str) -> None:
    # Incus validate.IsHostname
    if not 1 <= len(name) <= 63:
        raise InvalidInput("invalid_name", f"Name must be 1-63 characters long: {name!r}")
    if name.startswith("-"):
        raise InvalidInput("invalid_name", f'Name must not start with "-" character: {name!r}')
    if name.endswith("-"):
        raise InvalidInput("invalid_name", f'Name must not end with "-" character: {name!r}')
    if name.isdigit():
        raise InvalidInput("invalid_name", f"Name cannot be a number: {name!r}")
    if not _HOSTNAME_RE.fullmatch(name):
        raise InvalidInput(
            "invalid_name", f"Name can only contain alphanumeric and hyphen characters: {name!r}"
        )


def _validate_plain_name(what: str, name: str) -> None:
    # Incus ValidVolumeName: not empty, no backslashes, no slashes (the snapshot delimiter); we also refuse
    # `.`/`..`, whitespace and control characters, which no orchestrator can round-trip through a URL path.
    if not name:
        raise InvalidInput("invalid_name", f"Invalid {what} name: Cannot be empty")
    if len(name) > 200:  # first, so that no message below quotes a huge name
        raise InvalidInput("invalid_name", f"Invalid {what} name: longer than 200 characters")
    if "\\" in name:
        raise InvalidInput("invalid_name", f"Invalid {what} name {name!r}: Cannot contain backslashes")
    if "/" in name:
        raise InvalidInput("invalid_name", f"Invalid {what} name {name!r}: Cannot contain slashes")
    if name in (".", ".."):
        raise InvalidInput("invalid_name", f"Invalid {what} name {name!r}")
    if any(c.isspace() or not c.isprintable() for c in name):
        raise InvalidInput(
            "invalid_name", f"Invalid {what} name {name!r}: Cannot contain whitespace or control characters"
        )


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

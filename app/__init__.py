"""linstor-names: Incus-compatible name resolution for LINSTOR."""

__version__ = "0.1.0"

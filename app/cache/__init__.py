"""The lookup cache: SQLModel tables, the CacheStore repository and the full sync with LINSTOR."""

from app.cache.queries import CachedVolume
from app.cache.replace import ReplaceResult, StaleSyncError
from app.cache.store import CacheStats, CacheStore

__all__ = ["CacheStats", "CacheStore", "CachedVolume", "ReplaceResult", "StaleSyncError"]

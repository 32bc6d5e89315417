"""Settings store: schema, defaults, validation, migrations."""

from .registry import declarations
from .store import Change, Snapshot, Store, transaction
from .types import SettingError, UNLIMITED

__all__ = ["declarations", "Change", "Snapshot", "Store", "transaction", "SettingError", "UNLIMITED"]

"""Settings store: the database (db), schema, defaults, validation, migrations."""

from .db import transaction
from .registry import declarations
from .store import Change, SchemaOutOfDate, Snapshot, Store, StoreMissing
from .types import SettingError, UNLIMITED

__all__ = ["declarations", "Change", "SchemaOutOfDate", "Snapshot", "Store", "StoreMissing",
           "transaction", "SettingError", "UNLIMITED"]

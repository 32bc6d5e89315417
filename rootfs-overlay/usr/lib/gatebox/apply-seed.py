"""Apply a factory seed to a freshly initialised box: `key=value` settings,
one a line, on stdin. One process for all of them, because each `gatebox
config set` would start Python again and software-emulated boots are slow."""

import sys
from pathlib import Path

from firmware.config import SettingError, Store


def main(data: str) -> int:
    store = Store(Path(data))
    for line in sys.stdin.read().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        try:
            store.set(key.strip(), value.strip(), actor="seed")
        except SettingError as error:
            print(f"seed: {error}", file=sys.stderr)
            return 1
        print(f"seed: {key.strip()} set")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

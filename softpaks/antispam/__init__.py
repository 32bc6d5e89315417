"""The Anti-Spam SoftPak: licensable, no features yet (see manifest.toml)."""

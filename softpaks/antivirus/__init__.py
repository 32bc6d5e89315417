"""The Anti-Virus SoftPak: licensable, no features yet (see manifest.toml)."""

"""The Anti-Virus SoftPak: ClamAV's daemon scans each message at the end of
DATA, before the box answers 250, so nothing infected is ever accepted.
gatebox runs its own clamd (a child of `gatebox run`, a systemd unit in the
image) with its socket and signatures under the data directory."""

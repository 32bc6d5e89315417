"""Box-level concerns: serial number, certificates, network, USB, updates."""

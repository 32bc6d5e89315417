"""gatebox firmware: everything that runs on the box and is not a SoftPak or the UI."""

__version__ = "0.1.0"

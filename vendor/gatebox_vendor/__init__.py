"""The vendor's side of gatebox licensing (never on a box)."""

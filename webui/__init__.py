"""The web admin (Flask): one blueprint per eSoft menu."""

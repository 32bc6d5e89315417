"""SoftPaks: one sub-package per paid feature module."""

"""Delivery agents: SMTP out (LAN server, smarthost, MX); SoftPaks add local delivery."""

from .smtp import Result, SmtpDelivery

__all__ = ["Result", "SmtpDelivery"]

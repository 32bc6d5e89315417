"""Email Server > Address Verification: the sender and recipient checks of
the manual (local sender exists, sender callout, SPF, header syntax,
recipient verification by SMTP callout, LDAP list or manual list), each a
named check of the policy chain (checks.py)."""

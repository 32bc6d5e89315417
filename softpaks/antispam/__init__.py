"""The Anti-Spam SoftPak, part 1: the layers decided at the connection and
envelope stages (blocked IPs, DNS blocklists, reverse DNS, black and
whitelists, greylisting). Each layer is a named check of the policy chain."""

"""USB sticks: update bundles and license key files found on an inserted
stick become offers the administrator can apply from System > Firmware.
Nothing on a stick is applied without being confirmed there.

    offers   scan a mounted stick; keep the offers in DATA/root/usb-offers.json
    watch    the root unit: mount inserted sticks read-only, scan, unmount on removal
"""

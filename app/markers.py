"""Properties of our own, beyond Incus's namespace, that make unfinished operations recognisable.

Keys under `Aux/linstor-names/` (Incus never reads them):
- `rd`: the RD's own name, written with its identity. LINSTOR's clone and restore copy every property, so
  an RD whose `rd` names another RD carries copied props (what the copy had not yet rewritten).
- `pending`: create | copy | restore while the operation that makes the RD has not finished; removed in
  the operation's last step. An RD still pending after a crash is adopted by a retry of the same request,
  or reported and removed by the repair after a grace period (it was never reported as created).
- `started-at`: when that operation (or a claim) started, seconds since the epoch.
- `claim`: on a claim RD (app/claims.py), the identity it claims.
"""

from __future__ import annotations

import time

ROOT = "Aux/linstor-names/"
OWN_NAME = ROOT + "rd"
PENDING = ROOT + "pending"
STARTED = ROOT + "started-at"
CLAIM = ROOT + "claim"
FINISHED = [PENDING, STARTED]  # the keys the last step deletes


def pending(rd_name: str, operation: str) -> dict[str, str]:
    """The marks an operation writes with the RD's identity: its own name, what is pending, since when."""
    return {OWN_NAME: rd_name, PENDING: operation, STARTED: f"{time.time():.3f}"}

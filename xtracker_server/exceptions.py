"""The root of every exception the server defines, and the whole tree. This module imports
nothing, so every layer (``domain/`` included) can derive from it; what each error answers over
HTTP is in ``errors.py``.

    XTrackerServerError
     ├── ApiError             errors.py: an error answer {"ok": false, "error": ...}
     │   HTTP input, pure rules (domain/), each also a ValueError
     ├── PayloadTooLong       domain/links.py: a start payload over Telegram's limit
     ├── PostbackProblem      domain/postbacks.py: a postback that cannot be read (422)
     ├── ReportError          domain/reports.py: a report parameter that cannot be honoured
     ├── FilterError          domain/filters.py: a report filter that cannot be read
     ├── MissingRate          domain/costs.py: no exchange rate converts a currency on a day
     ├── CostImportError      domain/cost_import.py: an Ads Manager export that cannot be read
     ├── UnfilledMacroError   domain/macros.py: a field holds a placeholder never filled (400)
     │   storage (store/)
     ├── StoreUnavailable     errors.py: the storage failed (503), also a RuntimeError
     ├── SlugTaken            errors.py: another link has the slug, also a ValueError
     ├── TokenNameTaken       errors.py: a live ingest token has the name, also a ValueError
     ├── NoSuchToken          errors.py: no such ingest token, also a LookupError
     ├── BackupError          errors.py: a backup or restore that cannot be done
     ├── DatabaseRefused      startup.py: the database cannot be started on, also a RuntimeError
     ├── DatabaseInUse        inuse.py: a restore found the database in use
     ├── RestoreInProgress    inuse.py: a server or worker found a restore in progress
     ├── UidTaken             clicks.py: a drafted uid exists already (the writer mints another)
     ├── LateBatch            inbox.py: a batch that reached the database past its deadline (503)
     ├── RollupBehind         rollup_marks.py: a catch-up given a time ran out of it (503)
     │   delivery (delivery/)
     ├── AddressRefused       guard.py: a destination resolves to an address not allowed
     ├── ProbeRefused         probe.py: a test delivery that cannot be made, also a ValueError
     ├── ExportBroken         services/exports.py: an export that stopped after its first byte
     │   use cases (services/errors.py): what a front end turns into its own answer
     └── ServiceError
          ├── Forbidden       the principal may not do this
          ├── NotFound        no such space, link, destination ... (for this principal)
          ├── Invalid         bad input, field by field
          └── Conflict        the change collides with what is stored

``except XTrackerServerError`` catches every error of ours; the built-in error each also is
keeps the code that caught it before working.
"""

from __future__ import annotations

__all__ = ["XTrackerServerError"]


class XTrackerServerError(Exception):
    """The root of every exception the server defines."""

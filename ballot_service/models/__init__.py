"""The data model. Who-voted and how-voted live in separate tables that share no key.

Secret-ballot rule (RULES.md §7): no table ties a member, seat or terminal to a
ballot serial or choices. `Issuance` counts how many blind signatures each eligible
member received in a round (no serial, no signature, and the last blinded value's digest only
while the round is open: RSA blind signatures, RFC 9474, so the service never sees what it
signed); `Cast` holds serials, unblinded signatures and
marks with random ids, no member (unless the vote is named), no terminal and no time of
its own; while a secret round is open its casts are `StagedCast` rows, sealed.
"""
from __future__ import annotations

from ballot_service.models.audit import (
    AuditEvent,
    AuditHead,
    Checkpoint,
    Record,
)
from ballot_service.models.ballots import (
    Cast,
    Issuance,
    PaperBallot,
    PrintJob,
    Refusal,
    ScannedPage,
    StagedCast,
    TallySheet,
)
from ballot_service.models.ids import random_id
from ballot_service.models.operators import (
    LoginFailure,
    LoginLock,
    Operator,
    OperatorGrant,
)
from ballot_service.models.sittings import (
    Attendance,
    Body,
    Candidate,
    Item,
    Meeting,
    MeetingAttendance,
    Member,
    OpenBallot,
    Project,
    Round,
    Sitting,
    Terminal,
)

__all__ = [
    "Attendance",
    "AuditEvent",
    "AuditHead",
    "Body",
    "Candidate",
    "Cast",
    "Checkpoint",
    "Issuance",
    "Item",
    "LoginFailure",
    "LoginLock",
    "Meeting",
    "MeetingAttendance",
    "Member",
    "OpenBallot",
    "Operator",
    "OperatorGrant",
    "PaperBallot",
    "PrintJob",
    "Project",
    "Record",
    "Refusal",
    "Round",
    "ScannedPage",
    "Sitting",
    "StagedCast",
    "TallySheet",
    "Terminal",
    "random_id",
]

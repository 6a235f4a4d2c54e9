"""A cast's receipt, as intake (intake.py) answers it."""
from __future__ import annotations

import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Receipt:
    serial: str
    receipt: str
    repeated: bool  # True when this was a retry of an already-accepted submission

    def as_dict(self) -> dict:
        return {"serial": self.serial, "receipt": self.receipt, "repeated": self.repeated}


def new_receipt(receipt_hash: str | None) -> str:
    """A cast's receipt (64 hex digits): the tablet's receipt hash H(r) where it sent one, else
    random. Never a function of the serial or the marks, so the bundle, which lists a round's
    receipts apart from its ballots, cannot match a receipt to marks (README, threat model)."""
    return receipt_hash if receipt_hash is not None else secrets.token_hex(32)

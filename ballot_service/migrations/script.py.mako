"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""
from alembic import op
import sqlalchemy as sa
import ballot_service.db
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
    # regen-pending-migration: the ops of later changes of models/ go above this line


def downgrade() -> None:
    # regen-pending-migration: their reversal goes below this line
    ${downgrades if downgrades else "pass"}

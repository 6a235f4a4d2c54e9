"""Upgrade a 0.1.0 database to 0.2.0.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 02:09:26.072280

Until 0.2.0 is released this is the pending migration: scripts/regen-pending-migration adds
later changes of models/ at its two marker lines, to be reviewed by hand. 0001 is 0.1.0's
schema, released, and stays as it is.

What it does to each table that changed since 0.1.0:

- audit_events: gains `chain`, and the primary key becomes (chain, seq).
- audit_head: keyed by `chain` instead of the fixed id 1 (the `id` column goes).
- checkpoints: gain `chain` (indexed).
  0.1.0 wrote ONE chain for everything. An event's hash does not cover its chain number
  (domain/audit.py event_hash), so the old chain keeps verifying as long as it stays whole in
  one chain. The rule: every 0.1.0 event, the head and every checkpoint go to the chain of the
  database's first body (lowest bodies.id), so that body's bundle (`audit export`) holds its
  whole history, seq 1, 2, 3, … unchanged, and new events continue it; a database without a
  body puts them in the server chain (0). A 0.1.0 database had one body in practice. Events of
  no body that 0.1.0 wrote into the one chain (operators, logins) stay where they are; new ones
  go to the server chain. With several bodies the first body's chain also holds the others'
  0.1.0 events and checkpoints signed by their keys, and the others start new chains: export
  each body's bundle with 0.1.0 before upgrading (README, Upgrades).
- operators: `role` moves to operator_grants: each operator's role becomes one grant with
  body_id NULL (every body, as in 0.1.0), dated the operator's created_at; gains
  session_version (1) and disabled_at (NULL).
- items: gain mark_rule ('any'), options, grading, office (NULL) and by_election (false).
- candidates: gain office. rounds: gain stage, open_override (NULL) and rescanned (0).
- terminals: gain set_up_at and last_seen_at (NULL).
- new tables: operator_grants, login_failures, login_locks, projects, meetings,
  meeting_attendance, scanned_pages.
- casts, issuances, paper_ballots: unchanged (WITHOUT ROWID on SQLite, casts keyed by a random
  id, already in 0.1.0); so are bodies, sittings, members, attendance, records, refusals,
  tally_sheets.

New NOT NULL columns are added with a server default that fills the existing rows; where
models/ declare no server default, it is dropped afterwards, so an upgraded schema equals a
fresh one (tests/test_upgrade.py). On SQLite, dropping a column, a default or a primary key
rebuilds the table (batch mode); env.py turns foreign keys off for the run and checks them
all before it commits.
"""
import sqlalchemy as sa
from alembic import op

import ballot_service.db  # its UTCDateTime, as 0001 names it (not db.base: a migration outlives a move)

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SERVER_CHAIN = 0  # domain/audit.py's SERVER_CHAIN, copied: a migration does not follow later code
ROLE_RANK = ("superuser", "secretariat", "auditor", "display")  # vocab.OperatorRole's order


def upgrade() -> None:
    _create_new_tables()
    history = _history_chain()
    _audit_chains(history)
    _operator_grants()
    op.add_column('items', sa.Column('mark_rule', sa.String(length=16), server_default='any', nullable=False))
    op.add_column('items', sa.Column('options', sa.JSON(), nullable=True))
    op.add_column('items', sa.Column('grading', sa.JSON(), nullable=True))
    op.add_column('items', sa.Column('office', sa.String(length=32), nullable=True))
    # The default fills the old rows; models/ have none, so it goes (SQLite: items is rebuilt).
    op.add_column('items', sa.Column('by_election', sa.Boolean(), server_default='0', nullable=False))
    with op.batch_alter_table('items') as batch_op:
        batch_op.alter_column('by_election', server_default=None)
    op.add_column('candidates', sa.Column('office', sa.String(length=200), nullable=True))
    op.add_column('rounds', sa.Column('stage', sa.String(length=16), nullable=True))
    op.add_column('rounds', sa.Column('open_override', sa.JSON(), nullable=True))
    op.add_column('rounds', sa.Column('rescanned', sa.Integer(), server_default='0', nullable=False))
    op.add_column('terminals', sa.Column('set_up_at', ballot_service.db.UTCDateTime(), nullable=True))
    op.add_column('terminals', sa.Column('last_seen_at', ballot_service.db.UTCDateTime(), nullable=True))
    # regen-pending-migration: the ops of later changes of models/ go above this line


def _history_chain() -> int:
    """The chain 0.1.0's one chain becomes: the first body's, else the server's."""
    first = op.get_bind().execute(sa.text("SELECT MIN(id) FROM bodies")).scalar()
    return first if first is not None else SERVER_CHAIN


def _audit_chains(history: int) -> None:
    """audit_events, audit_head and checkpoints get their chain; every old row is in `history`."""
    fill = str(history)  # each new column's default fills the old rows, then goes (models/ have none)
    op.add_column('audit_events', sa.Column('chain', sa.Integer(), autoincrement=False, nullable=False,
                                            server_default=fill))
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.alter_column('chain', server_default=None)
        batch_op.drop_constraint('pk_audit_events', type_='primary')
        batch_op.create_primary_key('pk_audit_events', ['chain', 'seq'])
    op.add_column('audit_head', sa.Column('chain', sa.Integer(), autoincrement=False, nullable=False,
                                          server_default=fill))
    with op.batch_alter_table('audit_head') as batch_op:
        batch_op.alter_column('chain', server_default=None)
        batch_op.drop_constraint('pk_audit_head', type_='primary')
        batch_op.drop_column('id')
        batch_op.create_primary_key('pk_audit_head', ['chain'])
    op.add_column('checkpoints', sa.Column('chain', sa.Integer(), nullable=False, server_default=fill))
    with op.batch_alter_table('checkpoints') as batch_op:
        batch_op.alter_column('chain', server_default=None)
        batch_op.create_index(batch_op.f('ix_checkpoints_chain'), ['chain'], unique=False)


def _operator_grants() -> None:
    """Each operator's 0.1.0 role becomes a grant in every body; then operators lose `role`."""
    op.add_column('operators', sa.Column('session_version', sa.Integer(), nullable=False, server_default='1'))
    op.add_column('operators', sa.Column('disabled_at', ballot_service.db.UTCDateTime(), nullable=True))
    _create_grants_table()
    op.execute("INSERT INTO operator_grants (operator_id, body_id, role, created_at) "
               "SELECT id, NULL, role, created_at FROM operators ORDER BY id")
    with op.batch_alter_table('operators') as batch_op:
        batch_op.alter_column('session_version', server_default=None)
        batch_op.drop_column('role')


def _create_new_tables() -> None:
    """The tables 0.1.0 did not have (operator_grants: _create_grants_table)."""
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', ballot_service.db.UTCDateTime(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failures_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failures_source'), ['source'], unique=False)

    op.create_table('login_locks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('until', ballot_service.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_locks'))
    )
    with op.batch_alter_table('login_locks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_locks_source'), ['source'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_locks_until'), ['until'], unique=False)

    op.create_table('projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('body_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('department', sa.String(length=200), nullable=True),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('investment', sa.Integer(), nullable=True),
    sa.Column('created_at', ballot_service.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['body_id'], ['bodies.id'], name=op.f('fk_projects_body_id_bodies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('body_id', 'code', name=op.f('uq_projects_body_id_code'))
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_projects_body_id'), ['body_id'], unique=False)

    op.create_table('meetings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sitting_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('started_at', ballot_service.db.UTCDateTime(), nullable=False),
    sa.Column('ended_at', ballot_service.db.UTCDateTime(), nullable=False),
    sa.Column('members', sa.Integer(), nullable=False),
    sa.Column('present', sa.Integer(), nullable=False),
    sa.Column('leave', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['sitting_id'], ['sittings.id'], name=op.f('fk_meetings_sitting_id_sittings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meetings')),
    sa.UniqueConstraint('sitting_id', 'number', name=op.f('uq_meetings_sitting_id_number'))
    )
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meetings_sitting_id'), ['sitting_id'], unique=False)

    op.create_table('meeting_attendance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], name=op.f('fk_meeting_attendance_meeting_id_meetings')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_meeting_attendance_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meeting_attendance')),
    sa.UniqueConstraint('meeting_id', 'member_id', name=op.f('uq_meeting_attendance_meeting_id_member_id'))
    )
    with op.batch_alter_table('meeting_attendance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_attendance_meeting_id'), ['meeting_id'], unique=False)

    op.create_table('scanned_pages',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('sitting_id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('image', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('qr_text', sa.Text(), nullable=True),
    sa.Column('boxes', sa.JSON(), nullable=False),
    sa.Column('crops', sa.JSON(), nullable=False),
    sa.Column('decisions', sa.JSON(), nullable=False),
    sa.Column('outcome', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_scanned_pages_round_id_rounds')),
    sa.ForeignKeyConstraint(['sitting_id'], ['sittings.id'], name=op.f('fk_scanned_pages_sitting_id_sittings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scanned_pages'))
    )
    with op.batch_alter_table('scanned_pages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scanned_pages_round_id'), ['round_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scanned_pages_sitting_id'), ['sitting_id'], unique=False)


def _create_grants_table() -> None:
    op.create_table('operator_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('body_id', sa.Integer(), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', ballot_service.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['body_id'], ['bodies.id'], name=op.f('fk_operator_grants_body_id_bodies')),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_operator_grants_operator_id_operators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operator_grants')),
    sa.UniqueConstraint('operator_id', 'body_id', 'role', name=op.f('uq_operator_grants_operator_id_body_id_role'))
    )
    with op.batch_alter_table('operator_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operator_grants_body_id'), ['body_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_operator_grants_operator_id'), ['operator_id'], unique=False)


def downgrade() -> None:
    """Back to 0.1.0's schema, when there is still only one audit chain (a newer chain's seqs
    would collide in 0.1.0's key); an operator keeps its highest-ranked role."""
    bind = op.get_bind()
    chains = bind.execute(sa.text("SELECT COUNT(DISTINCT chain) FROM audit_events")).scalar()
    if chains and chains > 1:
        raise RuntimeError(f"cannot downgrade to 0.1.0: the audit log has {chains} chains and 0.1.0 keeps one; "
                           f"restore the backup made before the upgrade instead")
    # regen-pending-migration: their reversal goes below this line
    op.drop_column('terminals', 'last_seen_at')
    op.drop_column('terminals', 'set_up_at')
    with op.batch_alter_table('rounds') as batch_op:
        batch_op.drop_column('rescanned')
        batch_op.drop_column('open_override')
        batch_op.drop_column('stage')
    with op.batch_alter_table('candidates') as batch_op:
        batch_op.drop_column('office')
    with op.batch_alter_table('items') as batch_op:
        batch_op.drop_column('by_election')
        batch_op.drop_column('office')
        batch_op.drop_column('grading')
        batch_op.drop_column('options')
        batch_op.drop_column('mark_rule')
    op.add_column('operators', sa.Column('role', sa.String(length=16), nullable=False, server_default=''))
    rank = " ".join(f"WHEN '{r}' THEN {n}" for n, r in enumerate(ROLE_RANK))
    op.execute("UPDATE operators SET role = COALESCE((SELECT g.role FROM operator_grants g "
               f"WHERE g.operator_id = operators.id ORDER BY CASE g.role {rank} ELSE {len(ROLE_RANK)} END, g.id "
               "LIMIT 1), '')")
    with op.batch_alter_table('operators') as batch_op:
        batch_op.alter_column('role', server_default=None)
        batch_op.drop_column('disabled_at')
        batch_op.drop_column('session_version')
    with op.batch_alter_table('checkpoints') as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoints_chain'))
        batch_op.drop_column('chain')
    op.add_column('audit_head', sa.Column('id', sa.Integer(), nullable=False, server_default='1'))
    with op.batch_alter_table('audit_head') as batch_op:
        batch_op.alter_column('id', server_default=None)
        batch_op.drop_constraint('pk_audit_head', type_='primary')
        batch_op.drop_column('chain')
        batch_op.create_primary_key('pk_audit_head', ['id'])
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.drop_constraint('pk_audit_events', type_='primary')
        batch_op.drop_column('chain')
        batch_op.create_primary_key('pk_audit_events', ['seq'])
    _drop_new_tables()


def _drop_new_tables() -> None:
    with op.batch_alter_table('scanned_pages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scanned_pages_sitting_id'))
        batch_op.drop_index(batch_op.f('ix_scanned_pages_round_id'))

    op.drop_table('scanned_pages')
    with op.batch_alter_table('meeting_attendance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_attendance_meeting_id'))

    op.drop_table('meeting_attendance')
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meetings_sitting_id'))

    op.drop_table('meetings')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_projects_body_id'))

    op.drop_table('projects')
    with op.batch_alter_table('operator_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operator_grants_operator_id'))
        batch_op.drop_index(batch_op.f('ix_operator_grants_body_id'))

    op.drop_table('operator_grants')
    with op.batch_alter_table('login_locks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_locks_until'))
        batch_op.drop_index(batch_op.f('ix_login_locks_source'))

    op.drop_table('login_locks')
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failures_source'))
        batch_op.drop_index(batch_op.f('ix_login_failures_at'))

    op.drop_table('login_failures')

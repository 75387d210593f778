"""The durable job queue (``jobs``): cycle roll-over, CSV imports, retention and purges run from it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00.000000
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_by", sa.String(length=200), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=2000), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_jobs_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_jobs_dedupe_key")),
    )
    op.create_index("ix_jobs_status_run_at", "jobs", ["status", "run_at"])
    op.create_index("ix_jobs_status_locked_until", "jobs", ["status", "locked_until"])
    op.create_index("ix_jobs_account_id_created_at", "jobs", ["account_id", "created_at"])
    # Imports that were left "queued" or "running" by the old in-process runner (lost at a restart)
    # are handed to the queue, which resumes them where their last batch ended.
    imports = sa.table(
        "import_jobs",
        sa.column("id", sa.Uuid()),
        sa.column("account_id", sa.Uuid()),
        sa.column("status", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    jobs = sa.table(
        "jobs",
        *(sa.column(name, sa.String()) for name in ("kind", "status", "dedupe_key")),
        *(sa.column(name, sa.Uuid()) for name in ("id", "account_id")),
        *(sa.column(name, sa.Integer()) for name in ("attempts", "max_attempts")),
        *(sa.column(name, sa.DateTime(timezone=True)) for name in ("run_at", "created_at")),
        sa.column("payload", sa.JSON()),
    )
    bind = op.get_bind()
    left = bind.execute(
        sa.select(imports.c.id, imports.c.account_id, imports.c.created_at).where(
            imports.c.status.in_(("queued", "running"))
        )
    ).all()
    if left:
        op.bulk_insert(
            jobs,
            [
                {
                    "id": uuid.uuid4(),
                    "kind": "users.import",
                    "payload": {"import_id": str(row.id)},
                    "account_id": row.account_id,
                    "status": "queued",
                    "attempts": 0,
                    "max_attempts": 5,
                    "run_at": row.created_at,
                    "created_at": row.created_at,
                    "dedupe_key": f"users.import:{row.id}",
                }
                for row in left
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_jobs_account_id_created_at", table_name="jobs")
    op.drop_index("ix_jobs_status_locked_until", table_name="jobs")
    op.drop_index("ix_jobs_status_run_at", table_name="jobs")
    op.drop_table("jobs")

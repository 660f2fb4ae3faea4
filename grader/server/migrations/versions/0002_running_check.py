"""The check a running grade is at: its name and whether it is hidden."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("submissions", sa.Column("running_check", sa.String(200), nullable=True))
    op.add_column("submissions", sa.Column("running_hidden", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as table:
        table.drop_column("running_hidden")
        table.drop_column("running_check")

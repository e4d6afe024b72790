"""files every node can read: the uploaded files move from the upload folder into the database

Revision ID: 0008_file_store
Revises: 0007_contracts
Create Date: 2026-12-02 09:00:00

New tables: ``file_blobs`` (the bytes of each file once per content, keyed by SHA-256; ``bytea`` on
PostgreSQL) and ``held_uploads`` (files kept between two requests, such as a usage file between its
preview and its apply). ``stored_files.sha256`` gets an index: it names the blob.

Then every file a ``stored_files`` row names is read from the upload folder (``SCM_UPLOAD_FOLDER``
as the app sees it when ``flask db upgrade`` runs), checked against its recorded SHA-256 and written
into ``file_blobs``, one file in memory at a time. A missing or changed file stops the migration
(nothing is changed: the whole upgrade is one transaction on PostgreSQL and SQLite) and names the
file: put it back, or restore the folder from a backup, and run the upgrade again. Files held
between two requests (``held/``) are not moved: they last a day; a usage preview open during the
upgrade is uploaded again. Afterwards the upload folder is no longer read; keep a copy until the
first backup after the upgrade.

Downgrade writes each stored file back into the upload folder under its ``stored_name`` (an
existing file there is left as it is), then drops the new tables.
"""
import hashlib
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from flask import current_app

revision = '0008_file_store'
down_revision = '0007_contracts'
branch_labels = None
depends_on = None


stored_files = sa.table('stored_files', sa.column('id', sa.Integer), sa.column('stored_name', sa.String),
                        sa.column('original_name', sa.String), sa.column('sha256', sa.String))
file_blobs = sa.table('file_blobs', sa.column('sha256', sa.String), sa.column('size', sa.Integer),
                      sa.column('content', sa.LargeBinary), sa.column('created_at', sa.DateTime),
                      sa.column('used_at', sa.DateTime))


def _folder():
    return Path(current_app.config['UPLOAD_FOLDER'])


def upgrade():
    rows = _check_files()  # first: a missing file stops the upgrade before anything changes
    op.create_table('file_blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_file_blobs'))
    )
    op.create_table('held_uploads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=80), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['sha256'], ['file_blobs.sha256'], name=op.f('fk_held_uploads_sha256_file_blobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_held_uploads')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_held_uploads_token_hash'))
    )
    op.create_index(op.f('ix_held_uploads_created_at'), 'held_uploads', ['created_at'], unique=False)
    op.create_index(op.f('ix_held_uploads_sha256'), 'held_uploads', ['sha256'], unique=False)
    op.create_index(op.f('ix_stored_files_sha256'), 'stored_files', ['sha256'], unique=False)
    _move_files_in(rows)


def _check_files():
    """Every stored file, once each is found in the upload folder with its recorded SHA-256."""
    rows = op.get_bind().execute(sa.select(stored_files.c.id, stored_files.c.stored_name, stored_files.c.original_name,
                                           stored_files.c.sha256).order_by(stored_files.c.id)).all()
    folder, problems = _folder(), []
    for row in rows:
        path = folder / row.stored_name
        if not path.is_file():
            problems.append(f'missing: {path} (stored file {row.id}, {row.original_name})')
        elif _sha256_of(path) != row.sha256:
            problems.append(f'changed: {path} (stored file {row.id}, {row.original_name}): '
                            'its SHA-256 is not the one recorded')
    if problems:
        raise RuntimeError(
            f'0008_file_store moves the uploaded files from the upload folder {folder} (SCM_UPLOAD_FOLDER) into '
            f'the database, and {len(problems)} of them cannot be moved:\n  ' + '\n  '.join(problems)
            + '\nNothing was changed. Point SCM_UPLOAD_FOLDER at the folder holding them (or restore it from '
            'a backup) and run flask db upgrade again.')
    return rows


def _move_files_in(rows):
    """Each file's bytes into file_blobs, once per content, one file in memory at a time."""
    bind, folder = op.get_bind(), _folder()
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # naive UTC, as the app stores times
    moved = set()
    for row in rows:
        if row.sha256 in moved:  # the same content again: kept once
            continue
        content = (folder / row.stored_name).read_bytes()
        if hashlib.sha256(content).hexdigest() != row.sha256:  # changed since it was checked above
            raise RuntimeError(f'0008_file_store: {folder / row.stored_name} changed during the migration')
        bind.execute(file_blobs.insert().values(sha256=row.sha256, size=len(content), content=content,
                                                created_at=now, used_at=now))
        moved.add(row.sha256)
        del content


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b''):
            digest.update(chunk)
    return digest.hexdigest()


def downgrade():
    bind = op.get_bind()
    rows = bind.execute(sa.select(stored_files.c.stored_name, stored_files.c.sha256)
                        .order_by(stored_files.c.id)).all()
    if rows:
        folder = _folder()
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            path = folder / row.stored_name
            if path.exists():
                continue
            content = bind.execute(sa.select(file_blobs.c.content)
                                   .where(file_blobs.c.sha256 == row.sha256)).scalar_one_or_none()
            if content is None:
                raise RuntimeError(f'0008_file_store downgrade: the content of {row.stored_name} is missing')
            tmp = folder / f'.{row.stored_name}.tmp'
            tmp.write_bytes(content)
            tmp.replace(path)
    op.drop_index(op.f('ix_stored_files_sha256'), table_name='stored_files')
    op.drop_index(op.f('ix_held_uploads_sha256'), table_name='held_uploads')
    op.drop_index(op.f('ix_held_uploads_created_at'), table_name='held_uploads')
    op.drop_table('held_uploads')
    op.drop_table('file_blobs')

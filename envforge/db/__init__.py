"""Databases for environments: clone production with anonymisation, seed, snapshot, restore.

Entry points: :func:`envforge.db.clone.clone_database`, :func:`envforge.db.seed.seed_database`,
:mod:`envforge.db.snapshot`, and the ``db:*`` actions in :mod:`envforge.db.actions`.
"""

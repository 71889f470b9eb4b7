"""The state store's Alembic migrations: ``env.py`` and one linear chain of revisions in
``versions/`` (``0001``, ``0002``, ...), applied by ``backends._schema.migrate`` whenever a store is
opened. Nobody runs ``alembic upgrade`` on a store: opening it is the upgrade.

To change the schema:

1. Change the tables the queries use (``_META`` in ``backends/_store.py``, or a MetaData of its
   own, which ``QUERIED`` in ``tests/backends/test_migrations.py`` then lists too).
2. Write the revision, with the next number as its id (zero-padded to four digits). From the
   template, by hand (no database needed)::

       alembic -c backends/_migrations/alembic.ini revision --rev-id NNNN -m "what it adds"

   or drafted by Alembic from the difference between ``_META`` and a scratch store at the
   previous head (open it with ``StateStore`` first)::

       A=backends/_migrations/alembic.ini URL=sqlite:////tmp/scratch.db
       alembic -c $A -x url=$URL revision --autogenerate --rev-id NNNN -m "what it adds"

   A revision defines the tables it creates inline, as they are at that revision: never import
   ``_META`` or a model into a revision, or an old revision changes when the model does.
3. Set ``backends._schema.HEAD`` to the new id.

``tests/backends/test_migrations.py`` fails until the migrated schema equals the queries' tables
on SQLite and PostgreSQL, the chain is linear and ``HEAD`` is its head.

Table names share a database with MLflow's (a team may point both at one PostgreSQL database):
MLflow already has ``jobs``, ``job_locks``, ``secrets``, ``webhooks``, ``scheduler_leases`` and
more (``mlflow.store.db.base_sql_model.Base.metadata``), so never reuse one of its names.
"""

"""Alembic migrations of every photonpipe table (one linear history for all applications)."""

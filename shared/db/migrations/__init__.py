"""Alembic environment and revisions; a package so that installs ship env.py too."""

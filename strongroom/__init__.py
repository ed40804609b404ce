"""Strongroom: the backup domain library (no Flask, no Celery)."""

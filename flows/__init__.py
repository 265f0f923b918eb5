"""Prefect flows: orchestration only; the work is in envforge/, the credentials in blocks/."""

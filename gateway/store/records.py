"""Transitional: deployments/recorder.py imports the records from here until the lead points it
at gateway.usage.records (removed in this helper's last commit)."""

from gateway.usage.records import AuditEvent, UsageRecord  # noqa: F401

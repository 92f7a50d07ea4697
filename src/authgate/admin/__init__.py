"""The admin API: superusers manage accounts and read the audit trail."""

"""The domain: one module per state change of a sitting (check-in, items and rounds,
issuance, intake, tally, records, the audit chain). Each only flushes; the web layer or the
CLI commits once per request or command."""

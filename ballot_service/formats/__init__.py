"""Formats: how things are written down — canonical JSON, encodings, the ballot token, the
ballot page geometry, scenario files. No database, no I/O beyond parsing."""

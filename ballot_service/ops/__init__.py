"""Operating an instance: backups and restores (backup.py), the health checks of `doctor` and
of `serve` at start (doctor.py), and the hall's own HTTPS certificates (tls.py)."""

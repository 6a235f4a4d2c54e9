"""Cryptography: keys, blind signatures, ballot token formats."""

"""Access keys: moved to common/credentials.py (the console reads them too); re-exported for the front door."""
from __future__ import annotations

from common.credentials import AccessKey, CredentialsError, Keyring, load_keys, parse_credentials, read_credentials_file, write_credentials_file

__all__ = ["AccessKey", "CredentialsError", "Keyring", "load_keys", "parse_credentials", "read_credentials_file", "write_credentials_file"]

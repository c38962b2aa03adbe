"""Puts ``tests/`` on the import path, so every test folder can use ``hil_process``."""

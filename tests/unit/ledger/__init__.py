"""Unit tests of ledger/."""

"""Unit tests of sms/."""

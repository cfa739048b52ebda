"""Unit tests of menus/."""

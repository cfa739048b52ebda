"""Scenario files: a subscriber story in YAML, checked before it runs, run against a server's HTTP
API step by step, reported as text or JUnit XML (`ussdsim scenario run`).
"""

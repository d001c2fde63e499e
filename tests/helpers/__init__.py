"""Importable helpers for tests that run code in other processes (work functions, scripts)."""

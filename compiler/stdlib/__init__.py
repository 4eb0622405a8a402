"""The standard library, written in .ssn (package data)."""

"""Use cases: migrate one pair (migrate.py), compare two accounts (verify.py)."""

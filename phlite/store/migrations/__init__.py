"""Numbered schema migrations: mNNNN_name.py, each with VERSION and STATEMENTS.

Never edit a migration that has shipped: add a new one. A data dir made by an
older phlite is brought up to date at startup.
"""

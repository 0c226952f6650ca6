"""Shared pieces that more than one plugin uses, so that no plugin imports another."""

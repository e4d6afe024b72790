"""Billing screens."""

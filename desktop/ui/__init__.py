"""Widgets and plots."""

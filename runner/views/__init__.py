"""Participant runner views (thin: parse the request, call a service, render)."""

from .run import run_page, start, verify_email

__all__ = ["run_page", "start", "verify_email"]

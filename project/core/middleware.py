"""A modest Content-Security-Policy for our own pages.

It restricts what no page of ours needs, and nothing that jsPsych trials use (inline
scripts and styles, media from our origin, plugins' own elements): no framing of our
pages by other sites (``frame-ancestors``, as ``X_FRAME_OPTIONS`` already says for older
browsers: ``'none'`` for ``DENY``, ``'self'`` for ``SAMEORIGIN``), no plugins
(``object-src 'none'``) and no ``<base>`` pointing our relative URLs elsewhere
(``base-uri 'self'``). ``CONTENT_SECURITY_POLICY`` replaces it; empty turns it off.
A response that sets its own policy keeps it.
"""

from __future__ import annotations

from django.conf import settings


def default_policy() -> str:
    ancestors = "'self'" if str(getattr(settings, "X_FRAME_OPTIONS", "DENY")).upper() == "SAMEORIGIN" else "'none'"
    return f"frame-ancestors {ancestors}; object-src 'none'; base-uri 'self'"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        configured = getattr(settings, "CONTENT_SECURITY_POLICY", None)
        self.policy = default_policy() if configured is None else configured

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response

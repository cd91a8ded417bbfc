"""Operational webhooks: Hookpost tells your own endpoints about endpoints and failing deliveries.

Operational endpoints are endpoints of Hookpost's own hidden application, and each event is a
message to it, so the delivery engine signs, retries and records them like any other.
"""

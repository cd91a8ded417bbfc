"""The HTTP API (``hookpost.api.app:create_app``)."""

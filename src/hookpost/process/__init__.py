"""Running Hookpost's processes: the Gunicorn config, their command lines, the supervisor."""

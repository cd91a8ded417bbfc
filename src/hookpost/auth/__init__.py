"""Who may call the API: the admin token, and tokens scoped to one application (app portal access)."""

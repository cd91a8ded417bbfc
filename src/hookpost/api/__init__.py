"""The web toolkit every router and page uses: state and session dependencies, errors mapped
to HTTP once, list queries, the edge middleware, health (the app itself: ``hookpost.app``)."""

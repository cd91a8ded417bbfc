"""The server-rendered pages' shared layer: what the console and the app portal both use
(``web``: templates, sessions, cookies, CSRF, the page route; ``views``: each page's common
part and the actions both offer; ``templates/`` the shared partials; ``static/`` the shared
stylesheet, script and the vendored htmx). Neither front imports the other."""

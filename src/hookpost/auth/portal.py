"""``GET /portal``: where app portal links lead. A placeholder until the console lands."""

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["App Portal"], include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hookpost app portal</title>
<meta name="referrer" content="no-referrer"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto">
<h1>Hookpost app portal</h1>
<p>The app portal is coming in a later release. Your link is valid: its access token, after
<code>#key=</code> in this page's address, works now as a bearer token for this application's
API routes (<code>/api/v1/app/&lt;app id&gt;/&hellip;</code>) and its live stream.</p>
</body></html>
"""


@router.get("/portal", response_class=HTMLResponse)
async def portal() -> HTMLResponse:
    # The token stays in the fragment: nothing here reads it or sends it anywhere.
    return HTMLResponse(_PAGE, headers={"cache-control": "no-store", "referrer-policy": "no-referrer"})

"""The live event stream: ``GET /api/v1/app/{app_id}/stream`` over WebSocket (docs/live-stream.md).

``events`` defines what is sent, ``bus`` carries events from every API and Celery worker
process to every API process with clients, ``router`` is the WebSocket route.
"""

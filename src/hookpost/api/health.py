from fastapi import APIRouter, Response, status

router = APIRouter(tags=["Health"])


@router.get("/health", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def health() -> Response:
    """The API process is up and answering (no authentication)."""
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/health/ping", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def ping() -> Response:
    """The API process is up (no authentication); the Svix server's liveness probe."""
    return Response(status_code=status.HTTP_204_NO_CONTENT)

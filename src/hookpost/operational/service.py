from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.api.errors import Conflict
from hookpost.operational.ids import OPERATIONAL_APP_ID
from hookpost.storage.models import Application


async def operational_application(session: AsyncSession) -> Application:
    """Hookpost's own application, made on first use."""
    application = await session.get(Application, OPERATIONAL_APP_ID)
    if application is not None:
        return application
    application = Application(id=OPERATIONAL_APP_ID, name="Hookpost operational webhooks", metadata_={})
    session.add(application)
    try:
        await session.flush()
    except IntegrityError as exc:  # made by a concurrent request just now
        await session.rollback()
        raise Conflict("Operational webhooks are being set up by another request; try again") from exc
    return application

"""Applications: the tenants that own endpoints and messages."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hookpost.applications.schemas import ApplicationIn, ApplicationPatch
from hookpost.kit.errors import Conflict, NotFound
from hookpost.kit.ids import has_prefix, looks_like_id, new_id
from hookpost.kit.pagination import Ordering, Page, PageParams, paginate
from hookpost.kit.validation import uid_from_path
from hookpost.operational.ids import OPERATIONAL_APP_ID
from hookpost.storage.models import Application, Endpoint

# Where Svix Play (Svix's hosted request inspector) receives webhooks.
SVIX_PLAY = "https://play.svix.com/"


def names_by_id(app_id_or_uid: str) -> bool:
    """Whether a path's application names it by id (an id's shape) rather than by uid: never both,
    so that an application whose uid is another's id cannot be taken for that other."""
    return looks_like_id(app_id_or_uid, "app")


def _named(app_id_or_uid: str) -> ColumnElement[bool]:
    column = Application.id if names_by_id(app_id_or_uid) else Application.uid
    return and_(column == app_id_or_uid, Application.id != OPERATIONAL_APP_ID)


async def find_application(session: AsyncSession, app_id_or_uid: str) -> Application | None:
    """The application a path names: by id if the value has an id's shape, else by uid."""
    return await session.scalar(select(Application).where(_named(app_id_or_uid)))


async def find_application_id(session: AsyncSession, app_id_or_uid: str) -> str | None:
    """The id of the application a path names (as :func:`find_application`), without loading it."""
    return await session.scalar(select(Application.id).where(_named(app_id_or_uid)))


@dataclass(frozen=True)
class ApplicationFilters:
    """Which applications a list keeps (Svix's ``exclude_apps_with_*``, and the console's search)."""

    search: str | None = None
    exclude_no_endpoints: bool = False
    exclude_disabled_endpoints: bool = False
    exclude_svix_play_endpoints: bool = False


async def application_page(
    session: AsyncSession, page: PageParams, order: Ordering, filters: ApplicationFilters = ApplicationFilters()
) -> Page[Application]:
    """A page of applications, never Hookpost's own hidden one; ``search`` keeps those whose
    name, uid or id contains it (any case)."""
    query = select(Application).where(Application.id != OPERATIONAL_APP_ID)
    if filters.exclude_no_endpoints:
        query = query.where(exists().where(Endpoint.app_id == Application.id))
    if filters.exclude_disabled_endpoints:
        query = query.where(~exists().where(Endpoint.app_id == Application.id, Endpoint.disabled.is_(True)))
    if filters.exclude_svix_play_endpoints:
        query = query.where(~exists().where(Endpoint.app_id == Application.id, Endpoint.url.startswith(SVIX_PLAY)))
    search = filters.search
    if search:
        pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                func.lower(Application.name).like(pattern, escape="\\"),
                func.lower(Application.uid).like(pattern, escape="\\"),
                func.lower(Application.id).like(pattern, escape="\\"),
            )
        )
    return await paginate(session, query, Application.id, page, order)


async def _flush_unique(session: AsyncSession, what: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"{what} with this uid already exists") from exc


async def create_application(
    session: AsyncSession, data: ApplicationIn, *, get_if_exists: bool
) -> tuple[Application, bool]:
    """The new application and True, or with ``get_if_exists`` the one with this uid and False."""
    if get_if_exists and data.uid is not None:
        existing = await find_application(session, data.uid)
        if existing is not None:
            return existing, False
    application = Application(
        id=new_id("app"),
        uid=data.uid,
        name=data.name,
        throttle_rate=data.throttle_rate,
        metadata_=data.metadata,
    )
    session.add(application)
    await _flush_unique(session, "An application")
    return application, True


async def find_or_create_application(
    session: AsyncSession, app_id_or_uid: str, data: ApplicationIn | None
) -> Application | None:
    """The application, or Svix's create on the way: made from ``data``, with the path as its
    uid unless ``data`` names one. None when there is none and none can be made: no ``data``,
    or an ``app_`` id, which names an application that exists or never will."""
    application = await find_application(session, app_id_or_uid)
    if application is not None or data is None or has_prefix(app_id_or_uid, "app"):
        return application
    uid = data.uid or uid_from_path(app_id_or_uid, "app_id")
    application, _ = await create_application(session, data.model_copy(update={"uid": uid}), get_if_exists=True)
    return application


async def update_application(
    session: AsyncSession, application: Application, data: ApplicationIn | ApplicationPatch
) -> Application:
    # PATCH changes what it names; PUT replaces the whole record.
    changes = data.model_dump(exclude_unset=isinstance(data, ApplicationPatch))
    if "metadata" in changes:
        changes["metadata_"] = changes.pop("metadata")
    for field, value in changes.items():
        setattr(application, field, value)
    await _flush_unique(session, "An application")
    return application


async def upsert_application(session: AsyncSession, app_id: str, data: ApplicationIn) -> tuple[Application, bool]:
    """PUT: update the application, or create it with the path as its uid.

    Addressed by uid, it keeps that uid unless the body names another.
    """
    if data.uid is None and not has_prefix(app_id, "app"):
        data = data.model_copy(update={"uid": uid_from_path(app_id, "app_id")})
    application = await find_application(session, app_id)
    if application is not None:
        return await update_application(session, application, data), False
    if has_prefix(app_id, "app"):
        raise NotFound("Application not found")
    return await create_application(session, data, get_if_exists=False)


async def delete_application(session: AsyncSession, application: Application) -> None:
    """Delete the application and all it holds (the database cascades to messages and the rest).

    Its endpoints go first, one by one, in a flush of their own: so each reports itself
    (``endpoint.deleted``, hookpost.operational) while the application, whose uid the event
    carries, still exists.
    """
    for endpoint in await session.scalars(select(Endpoint).where(Endpoint.app_id == application.id)):
        await session.delete(endpoint)
    await session.flush()
    await session.delete(application)

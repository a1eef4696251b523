"""Template context shared by every page."""

from __future__ import annotations

from triage.permissions import Role, user_role_names


def roles(request) -> dict:
    """The signed-in user's roles, for the navigation; evaluated only when a page asks."""

    class _Lazy:
        def __getattr__(self, name: str) -> bool:
            role = {
                "radiologist": Role.RADIOLOGIST,
                "department_head": Role.DEPARTMENT_HEAD,
                "auditor": Role.AUDITOR,
            }.get(name)
            if role is None:
                raise AttributeError(name)
            return role in user_role_names(request.user)

    return {"roles": _Lazy()}

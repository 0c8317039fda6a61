"""Views that need none of the page middleware, served straight after SecurityMiddleware by
``fleetportal.middleware.LeanPathsMiddleware``: no session, user, CSRF token, messages, htmx or
organization. Only views that authenticate each request themselves belong here (the HM webhook:
its signature); their routes stay in the main URLconf too, for ``reverse`` and the same answers."""

from clearance.urls import webhook_patterns

urlpatterns = [*webhook_patterns]

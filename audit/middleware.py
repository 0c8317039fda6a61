from audit.context import Actor, person, reset, set_actor
from organizations.login_throttle import client_ip


class AuditActorMiddleware:
    """Who acts in this request (a person, or nobody yet) and from where, for audit entries."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ip = client_ip(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = person(user, ip)
        else:
            actor = Actor("anonymous", ip=ip)
        token = set_actor(actor)
        try:
            return self.get_response(request)
        finally:
            reset(token)

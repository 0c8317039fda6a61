"""The portal's WSGI application plus three ceilings for bench/webhooks.py, in the same gunicorn:

* ``POST /bench/bare/`` answers 200 without Django (what gunicorn and HTTP alone cost);
* ``POST /bench/one-query/`` reads the body and runs one query (``SELECT 1``) through Django's
  connection, opened and closed exactly as for a request;
* ``POST /bench/one-insert/`` the same with the body stored by one autocommitted INSERT into a
  table of its own (``bench_ceiling``, made by the benchmark): the cost of storing a webhook at
  all, a commit waiting for the disk like the delivery's.

Never part of the product: only the benchmark starts gunicorn with this module.
"""

from django.core.signals import request_finished, request_started

from fleetportal.wsgi import application as portal


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/bench/bare/":
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']
    if path in ("/bench/one-query/", "/bench/one-insert/"):
        from django.db import connection

        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        request_started.send(sender=None, environ=environ)  # connection upkeep, as Django does
        try:
            with connection.cursor() as cursor:
                if path == "/bench/one-query/":
                    cursor.execute("SELECT 1")
                else:
                    cursor.execute(
                        "INSERT INTO bench_ceiling (body) VALUES (%s) RETURNING id", [body.decode()]
                    )
                cursor.fetchone()
        finally:
            request_finished.send(sender=None)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']
    return portal(environ, start_response)

"""No tables: one unmanaged model, so that the admin can list live connections.

:class:`LiveConnection` has no rows in any database (``managed = False``,
and wsmanager has no migrations): the admin page of :mod:`wsmanager.admin`
reads the registry instead. The model carries the permission that page
asks for, ``wsmanager.manage_connections``, which Django creates after
``migrate`` like any other.
"""

from __future__ import annotations

from django.db import models

__all__ = ["LiveConnection"]


class LiveConnection(models.Model):
    """An open socket as the admin shows it (never stored)."""

    id = models.CharField(primary_key=True, max_length=64)

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("manage_connections", "Can see, disconnect and notify live connections")]
        verbose_name = "live connection"
        verbose_name_plural = "live connections"

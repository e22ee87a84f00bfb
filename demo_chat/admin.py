"""The demo's models in Django's admin: editing a task there updates every open ``/tasks/`` page."""

from django.contrib import admin

from .models import Task


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "title", "done")
    list_editable = ("done",)
    search_fields = ("title",)

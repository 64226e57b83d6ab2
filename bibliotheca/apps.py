from django.apps import AppConfig


class BibliothecaConfig(AppConfig):
    name = "bibliotheca"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class BibliothecaConfig(AppConfig):
    name = "bibliotheca"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bibliotheca.health import check_collections
        from jobs.health.checks import register_check

        register_check(check_collections)

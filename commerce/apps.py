from django.apps import AppConfig


class CommerceConfig(AppConfig):
    name = "commerce"
    verbose_name = "Commerce"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from commerce.health import check_unpaid_orders
        from jobs.health.checks import register_check

        register_check(check_unpaid_orders)

from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs.health.checks import register_check
        from loyalty.health import check_wallets

        register_check(check_wallets)

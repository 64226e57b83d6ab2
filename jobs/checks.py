"""System checks of the alert settings: a bad address or channel stops start-up, not an alert."""

from typing import Any

from django.core import checks

from jobs.conf import jobs_settings


def check_alert_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from jobs.services.alert_webhook import webhook_url_problem
    from jobs.services.alerts import AlertSettingsError, channel_overrides

    errors = []
    url = str(jobs_settings.ALERT_WEBHOOK_URL)
    if url and (problem := webhook_url_problem(url)):
        errors.append(checks.Error(problem, id="jobs.E201"))
    try:
        channel_overrides()
    except AlertSettingsError as exc:
        errors.append(checks.Error(str(exc), id="jobs.E202"))
    return errors

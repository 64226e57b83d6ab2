"""System checks of the alert settings: a bad address or channel stops start-up, not an alert."""

from typing import Any

from django.core import checks

from jobs.conf import jobs_settings


def check_alert_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from jobs.services.alert_webhook import webhook_url_problem
    from jobs.services.alerts import AlertSettingsError, alert_emails, channel_overrides

    errors = []
    for email in alert_emails():
        try:
            validate_email(email)
        except ValidationError:
            errors.append(
                checks.Error(
                    f"JOBS_ALERT_EMAILS: {email!r} is not an email address", id="jobs.E203"
                )
            )
    url = str(jobs_settings.ALERT_WEBHOOK_URL)
    if url and (problem := webhook_url_problem(url)):
        errors.append(checks.Error(problem, id="jobs.E201"))
    try:
        channel_overrides()
    except AlertSettingsError as exc:
        errors.append(checks.Error(str(exc), id="jobs.E202"))
    return errors

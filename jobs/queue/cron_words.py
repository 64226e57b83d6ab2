"""Cron expressions (UTC) in words, for the common forms; anything else is shown as is."""

WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def _number(field: str, low: int, high: int) -> int | None:
    return int(field) if field.isdigit() and low <= int(field) <= high else None


def describe_cron(expression: str | None) -> str:
    """`"30 3 * * *"` -> `"daily at 03:30 UTC"`; None -> `"on demand"`; an expression
    outside the common forms comes back raw, so nothing is paraphrased wrongly."""
    if not expression:
        return "on demand"
    fields = expression.split()
    if len(fields) != 5:
        return expression
    minute, hour, day, month, weekday = fields
    if (day, month) != ("*", "*"):
        if month == "*" and weekday == "*" and (d := _number(day, 1, 31)):
            time = _at(minute, hour)
            return f"monthly on day {d} at {time} UTC" if time else expression
        return expression
    if hour == "*" and weekday == "*":
        if minute == "*":
            return "every minute"
        if minute.startswith("*/") and (step := _number(minute[2:], 1, 59)):
            return f"every {step} minutes"
        if (m := _number(minute, 0, 59)) is not None:
            return f"hourly at :{m:02d}"
        return expression
    time = _at(minute, hour)
    if time is None:
        return expression
    if weekday == "*":
        return f"daily at {time} UTC"
    if (w := _number(weekday, 0, 7)) is not None:
        return f"weekly on {WEEKDAYS[w % 7]} at {time} UTC"
    return expression


def _at(minute: str, hour: str) -> str | None:
    m, h = _number(minute, 0, 59), _number(hour, 0, 23)
    return f"{h:02d}:{m:02d}" if m is not None and h is not None else None

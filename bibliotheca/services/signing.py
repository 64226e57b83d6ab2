"""Request signing of the cloudLibrary partner API (shared by the client and the simulator)."""

import base64
import hashlib
import hmac
from datetime import datetime


def signature(*, account_key: str, datetime_header: str, method: str, path_with_query: str) -> str:
    """base64(HMAC-SHA256(key, "datetime\\nMETHOD\\n/cirrus/...?query"))."""
    message = "\n".join([datetime_header, method.upper(), path_with_query])
    digest = hmac.new(account_key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


def signed_headers(
    *, account_id: str, account_key: str, method: str, path_with_query: str, now: datetime
) -> dict[str, str]:
    """The three headers every request carries (`now` in UTC)."""
    date = now.strftime("%a, %d %b %Y %H:%M:%S GMT")
    sig = signature(
        account_key=account_key,
        datetime_header=date,
        method=method,
        path_with_query=path_with_query,
    )
    return {
        "3mcl-Datetime": date,
        "3mcl-Version": "2.0",
        "3mcl-Authorization": f"3MCLAUTH {account_id}:{sig}",
    }

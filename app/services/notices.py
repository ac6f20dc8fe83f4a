"""What the system writes in a notice is English (it is also the log); each known wording is
shown in the reader's language. A manager's own nudge is shown as they wrote it."""

import re

from flask_babel import gettext as _

_NOT_CONFIGURED = re.compile(
    r"^Messages could not be sent: channel (\w+) is not configured for this store\.$"
)
_REJECTED = re.compile(r"^(\w+) rejected a message: (.*)$", re.S)
_QUOTA = re.compile(r"^The daily (\w+) quota is used up: (\d+) message\(s\) wait until tomorrow\.$")
UNKNOWN_PROVIDER = (
    "A message may or may not have reached the client (the provider did not answer); "
    "it was not re-sent. See failed messages marked 'unknown'."
)
UNKNOWN_STOPPED = (
    "A message may or may not have reached the client (the sender stopped "
    "mid-send); it was not re-sent. See failed messages marked 'unknown'."
)


def not_configured(channel: str) -> str:
    """The stored wording of the warning that a channel is not set up."""
    return f"Messages could not be sent: channel {channel} is not configured for this store."


def rejected(channel: str, error: str) -> str:
    """The stored wording of a provider's refusal."""
    return f"{channel} rejected a message: {error}"


def quota_used_up(channel: str, waiting: int) -> str:
    """The stored wording of a used-up daily quota."""
    return f"{quota_prefix(channel)}: {waiting} message(s) wait until tomorrow."


def quota_prefix(channel: str) -> str:
    return f"The daily {channel} quota is used up"


def notice_text(text: str) -> str:
    """A notice's text in the reader's language when it is one the system writes."""
    if text == UNKNOWN_PROVIDER:
        return _(
            "A message may or may not have reached the client (the provider did not answer); "
            "it was not sent again. See the failed messages marked 'unknown'."
        )
    if text == UNKNOWN_STOPPED:
        return _(
            "A message may or may not have reached the client (sending stopped half-way); "
            "it was not sent again. See the failed messages marked 'unknown'."
        )
    if match := _NOT_CONFIGURED.match(text):
        return _(
            "Messages could not be sent: the %(channel)s channel is not set up for this store.",
            channel=match.group(1),
        )
    if match := _QUOTA.match(text):
        return _(
            "The daily %(channel)s quota is used up: %(n)s message(s) wait until tomorrow.",
            channel=match.group(1),
            n=match.group(2),
        )
    if match := _REJECTED.match(text):
        return _(
            "%(channel)s rejected a message: %(error)s",
            channel=match.group(1),
            error=match.group(2),
        )
    return text

"""Path and query parameters, checked at the edge: a malformed value is a 422 naming the
parameter (``path.sid``, ``query.cursor``) before it reaches Redis or Twilio.

Patterns are pydantic's (Rust regex): ``$`` is the end of the value, a trailing newline
(``%0A``) does not match.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from app.pipeline.recipients import E164Number

DELIVERY_ID = r"^dl_[0-9a-f]{28}$"
MESSAGE_SID = r"^(SM|MM)[0-9a-fA-F]{32}$"
DESTINATION_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# The pseudo-destinations of direct sends and imported messages are `$`-prefixed.
DESTINATION_FILTER = r"^\$?[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# HSCAN cursors are unsigned 64-bit integers: Redis refuses anything larger.
MAX_SCAN_CURSOR = 2**64 - 1
# A Twilio `next_page_uri` of this account's message list: printable ASCII, no spaces (the
# client checks it is this account's; a control character must not reach the URL builder).
TWILIO_PAGE_URI = r"^/2010-04-01/Accounts/AC[0-9a-fA-F]{32}/Messages\.json(\?[!-~]*)?$"

DeliveryId = Annotated[
    str, Path(pattern=DELIVERY_ID, description="A delivery id (`dl_` + 28 hex digits)")
]
MessageSid = Annotated[
    str, Path(pattern=MESSAGE_SID, description="A Twilio message SID (`SM`/`MM` + 32 hex)")
]
MessageReference = Annotated[
    str,
    Path(
        pattern=r"^(dl_[0-9a-f]{28}|(SM|MM)[0-9a-fA-F]{32})$",
        description="A delivery id (`dl_…`, held here) or a Twilio message SID (`SM…`)",
    ),
]
DestinationId = Annotated[str, Path(pattern=DESTINATION_ID, description="A destination's id")]
PhoneNumber = Annotated[
    str,
    Path(
        min_length=1,
        max_length=250,
        description="A phone number, international or national (`SMS_DEFAULT_REGION`)",
    ),
]
OptionalNumber = Annotated[
    E164Number | None,
    Query(max_length=250, description="An international phone number (`+` and country code)"),
]

"""One Outlook item as its MAPI properties (what a PST keeps), read by the adapter, converted by
``domain/pstcalendar.py`` (appointments) and ``domain/pstcards.py`` (contacts, tasks).

Tagged properties are keyed by their 16-bit ID; named properties (``PidLid*``, ``PidName*``) by
their property set and long ID or name, since their tags differ from file to file. IDs, sets and
types are those of [MS-OXPROPS] (learn.microsoft.com/openspecs/exchange_server_protocols/
ms-oxprops), each listed below with the specification that defines it: [MS-OXOCAL] appointments,
[MS-OXOCNTC] contacts, [MS-OXOTASK] tasks, [MS-OXORMDR] reminders, [MS-OXCMSG] messages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import NamedTuple

from mailferry.domain.errors import UnconvertibleError

# Property sets ([MS-OXPROPS] 1.3.2)
PS_MAPI = "00020328-0000-0000-c000-000000000046"
PS_PUBLIC_STRINGS = "00020329-0000-0000-c000-000000000046"
PSETID_APPOINTMENT = "00062002-0000-0000-c000-000000000046"
PSETID_TASK = "00062003-0000-0000-c000-000000000046"
PSETID_ADDRESS = "00062004-0000-0000-c000-000000000046"
PSETID_COMMON = "00062008-0000-0000-c000-000000000046"
PSETID_MEETING = "6ed8da90-450b-101b-98da-00aa003f1305"

Value = str | int | float | bool | bytes | dt.datetime | tuple[str, ...] | tuple[bytes, ...]


class NamedKey(NamedTuple):
    guid: str  # the property set, lower case
    name: int | str  # the long ID (LID), or the name of a string-named property


# -- named properties: [MS-OXOCAL] 2.2.1 (PSETID_Appointment, PSETID_Meeting) --------------------
START_WHOLE = NamedKey(PSETID_APPOINTMENT, 0x820D)  # PidLidAppointmentStartWhole, PtypTime (UTC)
END_WHOLE = NamedKey(PSETID_APPOINTMENT, 0x820E)  # PidLidAppointmentEndWhole
ALL_DAY = NamedKey(PSETID_APPOINTMENT, 0x8215)  # PidLidAppointmentSubType, PtypBoolean
LOCATION = NamedKey(PSETID_APPOINTMENT, 0x8208)  # PidLidLocation
BUSY_STATUS = NamedKey(PSETID_APPOINTMENT, 0x8205)  # PidLidBusyStatus: 0 free .. 4 elsewhere
STATE_FLAGS = NamedKey(PSETID_APPOINTMENT, 0x8217)  # PidLidAppointmentStateFlags
RECUR = NamedKey(PSETID_APPOINTMENT, 0x8216)  # PidLidAppointmentRecur, PtypBinary
RECURRING = NamedKey(PSETID_APPOINTMENT, 0x8223)  # PidLidRecurring
RECURRENCE_PATTERN = NamedKey(PSETID_APPOINTMENT, 0x8232)  # PidLidRecurrencePattern (its text)
TZ_DEFINITION_START = NamedKey(
    PSETID_APPOINTMENT, 0x825E
)  # PidLidAppointmentTimeZoneDefinitionStartDisplay
TZ_DEFINITION_RECUR = NamedKey(
    PSETID_APPOINTMENT, 0x8260
)  # PidLidAppointmentTimeZoneDefinitionRecur
GLOBAL_OBJECT_ID = NamedKey(PSETID_MEETING, 0x0003)  # PidLidGlobalObjectId
CLEAN_GLOBAL_OBJECT_ID = NamedKey(PSETID_MEETING, 0x0023)  # PidLidCleanGlobalObjectId
# [MS-OXORMDR] 2.2.1 (PSETID_Common), [MS-OXCMSG] 2.2.1.17 (PidNameKeywords)
REMINDER_DELTA = NamedKey(PSETID_COMMON, 0x8501)  # PidLidReminderDelta, minutes before
REMINDER_SET = NamedKey(PSETID_COMMON, 0x8503)  # PidLidReminderSet
COMMON_START = NamedKey(PSETID_COMMON, 0x8516)  # PidLidCommonStart
COMMON_END = NamedKey(PSETID_COMMON, 0x8517)  # PidLidCommonEnd
KEYWORDS = NamedKey(PS_PUBLIC_STRINGS, "Keywords")  # PidNameKeywords: the categories
# [MS-OXOTASK] 2.2.2.2 (PSETID_Task)
TASK_STATUS = NamedKey(PSETID_TASK, 0x8101)  # PidLidTaskStatus: 0 not started .. 4 deferred
PERCENT_COMPLETE = NamedKey(PSETID_TASK, 0x8102)  # PidLidPercentComplete, 0.0 .. 1.0
TASK_START = NamedKey(PSETID_TASK, 0x8104)  # PidLidTaskStartDate
TASK_DUE = NamedKey(PSETID_TASK, 0x8105)  # PidLidTaskDueDate
TASK_COMPLETED = NamedKey(PSETID_TASK, 0x810F)  # PidLidTaskDateCompleted
TASK_COMPLETE = NamedKey(PSETID_TASK, 0x811C)  # PidLidTaskComplete
# [MS-OXOCNTC] 2.2.1 (PSETID_Address)
EMAILS = tuple(
    (NamedKey(PSETID_ADDRESS, lid), NamedKey(PSETID_ADDRESS, lid - 3))  # address, display name
    for lid in (0x8083, 0x8093, 0x80A3)  # PidLidEmail1/2/3EmailAddress, ...DisplayName
)
WORK_ADDRESS = tuple(
    NamedKey(PSETID_ADDRESS, lid)  # PidLidWorkAddressStreet, City, State, PostalCode, Country
    for lid in (0x8045, 0x8046, 0x8047, 0x8048, 0x8049)
)
FILE_UNDER = NamedKey(PSETID_ADDRESS, 0x8005)  # PidLidFileUnder
HTML_PAGE = NamedKey(PSETID_ADDRESS, 0x802B)  # PidLidHtml: the web page
# [MS-OXOCNTC] 2.2.2.1 (a personal distribution list, IPM.DistList)
LIST_NAME = NamedKey(PSETID_ADDRESS, 0x8053)  # PidLidDistributionListName
LIST_ONE_OFFS = NamedKey(PSETID_ADDRESS, 0x8054)  # PidLidDistributionListOneOffMembers
LIST_MEMBERS = NamedKey(PSETID_ADDRESS, 0x8055)  # PidLidDistributionListMembers
LIST_STREAM = NamedKey(PSETID_ADDRESS, 0x8064)  # PidLidDistributionListStream (large lists)

# -- tagged properties ([MS-OXPROPS] 2.5xx; [MS-OXCMSG], [MS-OXOCNTC] 2.2.1) ----------------------
IMPORTANCE = 0x0017  # PidTagImportance: 0 low, 1 normal, 2 high
MESSAGE_CLASS = 0x001A  # PidTagMessageClass
SENSITIVITY = 0x0036  # PidTagSensitivity: 0 normal, 1 personal, 2 private, 3 confidential
SUBJECT = 0x0037  # PidTagSubject
SENT_REPRESENTING_NAME = 0x0042  # PidTagSentRepresentingName
SENT_REPRESENTING_TYPE = 0x0064  # PidTagSentRepresentingAddressType
SENT_REPRESENTING_ADDRESS = 0x0065  # PidTagSentRepresentingEmailAddress
SENT_REPRESENTING_SMTP = 0x5D02  # PidTagSentRepresentingSmtpAddress
SENDER_NAME, SENDER_SMTP = 0x0C1A, 0x5D01  # PidTagSenderName, PidTagSenderSmtpAddress
BODY = 0x1000  # PidTagBody
CREATION_TIME = 0x3007  # PidTagCreationTime
LAST_MODIFICATION_TIME = 0x3008  # PidTagLastModificationTime
SEARCH_KEY = 0x300B  # PidTagSearchKey: unique per item, kept across copies
DISPLAY_NAME = 0x3001  # PidTagDisplayName
ADDRESS_TYPE, EMAIL_ADDRESS = 0x3002, 0x3003  # PidTagAddressType, PidTagEmailAddress
SMTP_ADDRESS = 0x39FE  # PidTagSmtpAddress
RECIPIENT_TYPE = 0x0C15  # PidTagRecipientType: 1 to (required), 2 cc (optional), 3 resource
RECIPIENT_FLAGS = 0x5FFD  # PidTagRecipientFlags: 0x2 the organizer's own row
RECIPIENT_TRACK_STATUS = 0x5FFF  # PidTagRecipientTrackStatus: 2 tentative 3 accepted 4 declined
GIVEN_NAME, SURNAME, MIDDLE_NAME = 0x3A06, 0x3A11, 0x3A44
NAME_PREFIX, GENERATION, NICKNAME = 0x3A45, 0x3A05, 0x3A4F
COMPANY, TITLE, DEPARTMENT = 0x3A16, 0x3A17, 0x3A18
BIRTHDAY = 0x3A42  # PidTagBirthday
BUSINESS_HOME_PAGE = 0x3A51
PHONES = (  # (tag, vCard TYPE)
    (0x3A08, "WORK,VOICE"),  # PidTagBusinessTelephoneNumber
    (0x3A1B, "WORK,VOICE"),  # PidTagBusiness2TelephoneNumber
    (0x3A09, "HOME,VOICE"),  # PidTagHomeTelephoneNumber
    (0x3A2F, "HOME,VOICE"),  # PidTagHome2TelephoneNumber
    (0x3A1C, "CELL,VOICE"),  # PidTagMobileTelephoneNumber
    (0x3A24, "WORK,FAX"),  # PidTagBusinessFaxNumber
    (0x3A25, "HOME,FAX"),  # PidTagHomeFaxNumber
    (0x3A21, "PAGER"),  # PidTagPagerTelephoneNumber
    (0x3A1A, "PREF,VOICE"),  # PidTagPrimaryTelephoneNumber
    (0x3A1F, "VOICE"),  # PidTagOtherTelephoneNumber
)
HOME_ADDRESS = (0x3A5D, 0x3A59, 0x3A5C, 0x3A5B, 0x3A5A)  # PidTagHomeAddressStreet .. Country
OTHER_ADDRESS = (0x3A63, 0x3A5F, 0x3A62, 0x3A61, 0x3A60)  # PidTagOtherAddressStreet .. Country

# every named property a conversion reads: the adapter reads no other (an Exchange item carries
# dozens more, some of them kilobytes of text)
NAMED = frozenset(
    {key for key in list(globals().values()) if isinstance(key, NamedKey)}
    | {key for pair in EMAILS for key in pair}
    | set(WORK_ADDRESS)
)


@dataclass(frozen=True)
class MapiItem:
    """What the PST holds of one item: its identifier (the PST's node id), its tagged and named
    properties, and its recipients' properties (one dict a row)."""

    identifier: str
    tagged: dict[int, Value] = field(default_factory=dict)
    named: dict[NamedKey, Value] = field(default_factory=dict)
    recipients: tuple[dict[int, Value], ...] = ()
    attachments: int = 0  # not converted: said in the item's notes (the contact's photo apart)
    photo: bytes | None = (
        None  # a contact's photo (PidTagAttachmentContactPhoto), as the PST has it
    )
    # the codec of the code page the item declares for its non-Unicode strings
    # (PidTagMessageCodepage), where it names one other than windows-1252 that Python knows
    codec: str | None = None

    def expect(self, message_class: str) -> None:
        """``UnconvertibleError`` for an item of another class (PidTagMessageClass): a
        distribution list among contacts, a task request among tasks, ..."""
        found = self.text(MESSAGE_CLASS)
        if found and not found.upper().startswith(message_class.upper()):
            raise UnconvertibleError(f"a {found} item is not converted (only {message_class})")

    def left_out(self) -> tuple[str, ...]:
        """What no conversion copies, for the item's notes: its attachments (files, an embedded
        message; a contact's photo is copied)."""
        if not self.attachments:
            return ()
        return (f"{self.attachments} attachment(s) not copied",)

    def text(self, key: int | NamedKey) -> str | None:
        value = self._get(key)
        return value.strip() or None if isinstance(value, str) else None

    def number(self, key: int | NamedKey) -> int | None:
        value = self._get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def real(self, key: int | NamedKey) -> float | None:
        value = self._get(key)
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    def flag(self, key: int | NamedKey) -> bool:
        value = self._get(key)
        return bool(value) if isinstance(value, bool | int) else False

    def time(self, key: int | NamedKey) -> dt.datetime | None:
        value = self._get(key)
        return value if isinstance(value, dt.datetime) else None

    def binary(self, key: int | NamedKey) -> bytes | None:
        value = self._get(key)
        return value if isinstance(value, bytes) else None

    def strings(self, key: int | NamedKey) -> tuple[str, ...]:
        value = self._get(key)
        if isinstance(value, tuple):
            return tuple(v for v in value if isinstance(v, str) and v)
        return (value,) if isinstance(value, str) and value else ()

    def binaries(self, key: int | NamedKey) -> tuple[bytes, ...]:
        """A multi-valued binary property (PtypMultipleBinary), in its order."""
        value = self._get(key)
        return tuple(v for v in value if isinstance(v, bytes)) if isinstance(value, tuple) else ()

    def _get(self, key: int | NamedKey) -> Value | None:
        return self.named.get(key) if isinstance(key, NamedKey) else self.tagged.get(key)

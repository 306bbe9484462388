"""The fixed material of the demo account: ages, people (hostile names included), texts,
transcripts, fax subjects and greeting presets. ``rcfs.emulator.seed`` draws from these
with seeded random generators.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MIN_AGE_MS = 3 * 60_000  # the newest seeded item is a few minutes old
MAX_AGE_MS = 730 * DAY_MS  # two years of history

MESSAGE_TYPES = ("VoiceMail", "Fax", "SMS", "Pager")
DIRECTIONS = ("Inbound", "Outbound")
AVAILABILITIES = ("Alive", "Deleted", "Purged")

# Content type and default attachment type of each media kind the admin API accepts.
KIND_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/x-wav",
    "pdf": "application/pdf",
    "tiff": "image/tiff",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "text": "text/plain",
}
KIND_EXT = {"jpeg": "jpg", "png": "png", "gif": "gif", "pdf": "pdf", "tiff": "tif",
             "mp3": "mp3", "wav": "wav", "text": "txt"}

ALNUM = string.ascii_letters + string.digits

# An MMS picture: (kind jpeg|png|gif, width, height, fileName or None).
MmsImage = tuple[str, int, int, str | None]


# ---------------------------------------------------------------------------------------------
# People


@dataclass(frozen=True)
class Contact:
    """An outside party: a phone number, maybe a caller-id name and a location."""

    name: str | None
    number: str
    location: str | None = None

    def party(self) -> dict[str, Any]:
        """The ``from``/``to`` object RingCentral returns; absent fields stay absent."""
        data: dict[str, Any] = {"phoneNumber": self.number}
        if self.name is not None:
            data["name"] = self.name
        if self.location is not None:
            data["location"] = self.location
        return data


LONG_NAME = (
    "Pinnacle Worldwide Logistics & Freight Forwarding Holdings — Accounts Payable / "
    "Receivable Reconciliation Department, Building 7, Suite 1200 — "
    "株式会社ピナクル・ワールドワイド・ロジスティクス国際貨物部門 📦🚚 "
    "Ελληνικό Γραφείο Εκτελωνισμού"
)
assert len(LONG_NAME.encode()) > 300  # over NAME_MAX (255 bytes) with room to spare
CONTROL_NAME = "Robo\x07Caller\x1b[31m WIN\x1b[0m\r\n\tPRIZE\x7f\x01"

# Hostile parties, by role; each appears in the admin's and the first user's mailboxes.
HOSTILE: dict[str, Contact] = {
    "slash": Contact("Smith / Jones LLP", "+12125550147", "New York (Manhattan), NY"),
    "rtl": Contact("\u200fمكتب الأمل للمحاماة\u200f", "+13135550111", "Dearborn, MI"),
    "emoji": Contact("🍕 Tony's Pizza 🍕", "+17185550123", "Brooklyn, NY"),
    "combining": Contact("Zoe\u0308 Saldan\u0303a-Bjo\u0308rk", "+14155550176",
                         "San Francisco, CA"),
    "zero_width": Contact("Ma\u200brie\u200d Cu\u2060rie\ufeff", "+16175550135", "Boston, MA"),
    "long": Contact(LONG_NAME, "+13055550188", "Miami, FL"),
    "control": Contact(CONTROL_NAME, "+18005550166", None),
    "dots": Contact("..", "+15035550102", "Portland, OR"),
    "no_name": Contact(None, "+19175550199", None),
    "short_code": Contact(None, "22395", None),
}

CONTACTS: tuple[Contact, ...] = (
    Contact("Maria Garcia", "+14085550131", "San Jose, CA"),
    Contact("James Wilson", "+13125550142", "Chicago, IL"),
    Contact("Priya Raman", "+15125550153", "Austin, TX"),
    Contact("Wei Chen", "+12065550164", "Seattle, WA"),
    Contact("Olivia Brown", "+16465550175", "New York, NY"),
    Contact("Mohammed Al-Farsi", "+17135550186", "Houston, TX"),
    Contact("Sofia Rossi", "+13035550197", "Denver, CO"),
    Contact("Lakeside Dental Care", "+16125550108", "Minneapolis, MN"),
    Contact("Dr. Emily Carter", "+16195550119", "San Diego, CA"),
    Contact("Kenji Watanabe", "+15035550121", "Portland, OR"),
    Contact("Grace Okafor", "+14045550132", "Atlanta, GA"),
    Contact("Brightline Insurance", "+18885550143", None),
    Contact("WIRELESS CALLER", "+17025550154", "Las Vegas, NV"),
    Contact("Lucas Martin", "+12155550165", "Philadelphia, PA"),
    Contact("Hannah Schmidt", "+15035550176", "Beaverton, OR"),
    Contact(None, "+19495550187", "Irvine, CA"),
)

FAX_SENDERS: tuple[Contact, ...] = (
    Contact("Acme Medical Records", "+18665550110", None),
    Contact("County Clerk Office", "+15305550121", "Sacramento, CA"),
    Contact("First National Bank", "+18005550132", None),
    Contact("Lakeside Dental Care", "+16125550109", "Minneapolis, MN"),
    Contact("Harbor Freight Brokers", "+15625550143", "Long Beach, CA"),
    Contact(None, "+17735550154", "Chicago, IL"),
)


@dataclass(frozen=True)
class _Person:
    number: str
    first: str
    last: str
    admin: bool
    kind: str  # "normal" | "tollfree" | "department"


PEOPLE = (
    _Person("101", "Alice", "Whitaker", True, "normal"),
    _Person("102", "Bruno", "Díaz", False, "normal"),
    # NFD spelling on purpose: the combining acute must survive into directory names.
    _Person("103", "Chloe\u0301", "Nakamura", False, "normal"),
    _Person("104", "Dmitri", "Volkov", False, "tollfree"),
    _Person("200", "Support Queue / Tier 1", "", False, "department"),
)

# ---------------------------------------------------------------------------------------------
# Texts

TRANSCRIPTS = (
    "Hi, this is Maria from Lakeside Dental calling to confirm your appointment on Thursday at "
    "ten AM. Please call us back if you need to reschedule. Thanks!",
    "Hey, it's James. The quarterly numbers look good, give me a call when you get a chance.",
    "This message is for the accounts payable team regarding invoice 4411. Please return my "
    "call at your earliest convenience.",
    "Hello, this is Brightline Insurance with an important update about your policy renewal.",
    "Hi, just checking whether the shipment went out yesterday. Talk soon.",
    "Good morning! Calling about the proposal you sent over, we have a few questions.",
    "It's me. Running about fifteen minutes late, start without me.",
    "Hello, this is the pharmacy. Your prescription is ready for pickup.",
)

SMS_SCRIPTS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("in", "Hi! Are we still on for lunch tomorrow?"), ("out", "Yes, 12:30 at the usual place"),
     ("in", "Perfect 👍"), ("out", "See you then"), ("in", "Running 5 min late, sorry!"),
     ("out", "No worries")),
    (("out", "Can you send me the signed contract?"), ("in", "Sending it over now"),
     ("in", "Did you get it?"), ("out", "Got it, thanks!")),
    (("in", "Your package will arrive between 2-4 PM today."), ("out", "Thank you"),
     ("in", "Delivered. Reply STOP to opt out.")),
    (("out", "Meeting moved to 3/14 at 10am / room B"), ("in", "ok, noted"),
     ("in", "Should I bring the slides?"), ("out", "Yes please 🙏"),
     ("in", "Will do ✅")),
    (("in", "Happy birthday!! 🎉🎂🥳"), ("out", "Thank you so much! ❤️"),
     ("in", "Drinks on Friday?"), ("out", "Absolutely")),
    (("out", "The invoice total is $1,245.00 — due 2024/07/01"), ("in", "Received, paying today"),
     ("in", "Payment sent via ACH"), ("out", "Confirmed, thanks")),
    (("in", "Is the office open on Monday?"), ("out", "Closed for the holiday, back Tuesday"),
     ("in", "Thanks")),
)

GROUP_TEXTS = (
    "Team dinner Friday 7pm — who's in?", "I'm in!", "Count me in 🍝", "Can't make it, sorry",
    "Booked a table for 6", "See you all there",
)

PAGER_TEXTS = (
    "Client on line 2 for you", "Can you cover the front desk at 3?", "Server room door is open",
    "Lunch is here 🍕", "Please call me back, urgent", "Conference room B is free now",
)

HOSTILE_TEXTS = (
    "..",
    "../../etc/passwd",
    "see a/b/c.txt and \\windows\\path",
    "invoice\u202efdp.exe",
    "Zalgo: Z\u0351\u034a\u0361a\u0352l\u0363g\u0350o\u0346 \u0298\u032e",
    "family: 👨\u200d👩\u200d👧\u200d👦 flags: 🇺🇸🇯🇵 skin: 👍🏽",
    "\u200f\u202bمرحبا بالعالم\u202c\u200f and back to LTR",
    ("Long message: " + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 12).strip(),
)

FAX_SUBJECTS = (
    "Invoice 2024/03/15 / PO#4411", "Medical records request", "Signed lease agreement",
    "Purchase order", "W-9 form", "Claim documents", "Referral", None,
)
HOSTILE_FAX_SUBJECTS = ("../../etc/passwd", "Re: contract.pdf\u202egpj.exe", "100% / 50% split")

GREETING_PRESETS = {
    "Introductory": ("0", "None"),
    "Announcement": ("66048", "Default"),
    "ConnectingMessage": ("66304", "Default"),
    "ConnectingAudio": ("66816", "Acoustic"),
    "Voicemail": ("65536", "Default"),
    "Unavailable": ("65792", "Default"),
    "InterruptPrompt": ("67072", "Default"),
    "HoldMusic": ("67328", "Acoustic"),
}

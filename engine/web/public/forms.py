"""The send-to-friend form: field syntax here, business rules in the forwarding service."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from babel.support import NullTranslations, Translations
from flask import current_app
from flask_babel import get_locale, gettext, lazy_gettext, ngettext
from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, StringField, TextAreaField
from wtforms.i18n import messages_path
from wtforms.validators import DataRequired, Length, Optional, StopValidation, ValidationError

from engine.channels import ContactKind
from engine.channels import names as channel_names
from engine.contacts import Contact, InvalidContact, parse_contact_in
from engine.services.forwarding import at_most_friends
from engine.text import NAME_MAX, NOTE_MAX, TextProblem, normalised, text_problem_kind
from engine.web.public.framing import form_meta


def _name_problem(problem: TextProblem) -> str:
    # Whole sentences for each field: "your name" dropped into a sentence reads wrong elsewhere.
    match problem:
        case TextProblem.CONTROL:
            return gettext("Your name can't contain control characters.")
        case TextProblem.INVISIBLE:
            return gettext(
                "Your name can't contain invisible characters or characters that change the text's direction."
            )
        case TextProblem.LINK:
            return gettext("Your name can't contain links or web addresses.")
        case TextProblem.MARKUP:
            return gettext("Your name can't contain HTML or the characters < and >.")
        case TextProblem.NAME_CHARACTERS:
            return gettext("Your name can only contain letters, spaces and the punctuation . , ' - & ( ).")
        case TextProblem.PHONE_NUMBER:
            return gettext("Your name can't contain phone numbers.")


def _note_problem(problem: TextProblem) -> str:
    match problem:
        case TextProblem.CONTROL:
            return gettext("The note can't contain control characters.")
        case TextProblem.INVISIBLE:
            return gettext(
                "The note can't contain invisible characters or characters that change the text's direction."
            )
        case TextProblem.LINK:
            return gettext("The note can't contain links or web addresses.")
        case TextProblem.MARKUP:
            return gettext("The note can't contain HTML or the characters < and >.")
        case TextProblem.NAME_CHARACTERS:
            return gettext("The note can only contain letters, spaces and the punctuation . , ' - & ( ).")
        case TextProblem.PHONE_NUMBER:
            return gettext("The note can't contain phone numbers.")


def plain_text(
    wording: Callable[[TextProblem], str], max_length: int, *, allow_newlines: bool = False, in_subject: bool = False
) -> Callable[[FlaskForm, Field], None]:
    def check(form: FlaskForm, field: Field) -> None:
        value = field.data or ""
        if len(value) > max_length:
            # Length has said so already (WTForms runs every check): no need to read a flood.
            raise StopValidation()
        regions = getattr(form, "regions", ("US",))
        problem = text_problem_kind(value, allow_newlines=allow_newlines, in_subject=in_subject, region=regions[0])
        if problem:
            raise ValidationError(wording(problem))

    return check


def _too_long(max_length: int) -> Length:
    return Length(max=max_length, message=lazy_gettext("At most %(max)d characters, please.", max=max_length))


def contact_problem(raw: str, position: int | None = None) -> str:
    """Why typed text is not a contact, in the reader's language (the parser's own reasons are
    English, and an email library's too detailed for a form)."""
    text = raw.strip()
    if not text:
        return gettext("Enter an email address or a phone number.")
    if "@" in text:
        if position is None:
            return gettext("%(value)s is not a valid email address.", value=text[:80])
        return gettext(
            "Friend %(position)s: %(value)s is not a valid email address.", position=position, value=text[:80]
        )
    if position is None:
        return gettext(
            "%(value)s is not a phone number we can read: check it, or type it with its country code (+…).",
            value=text[:40],
        )
    return gettext(
        "Friend %(position)s: %(value)s is not a phone number we can read: "
        "check it, or type it with its country code (+…).",
        position=position,
        value=text[:40],
    )


def _typed_text(value: object) -> object:
    """Stripped and normalised (NFKC): full-width letters are stored as the letters they are."""
    return normalised(value).strip() if isinstance(value, str) else value


# Between contacts pasted into one field: commas, semicolons, new lines.
_LIST_SEPARATORS = re.compile(r"[,;\r\n]+")


def split_contacts(text: str) -> list[str]:
    """The contacts in one typed field: split at commas, semicolons and new lines, and at spaces
    between addresses. Spaces inside a phone number are how people write it ("06 1234 5678"), so
    words without an @ stay together, up to a `+` that starts the next number."""
    contacts: list[str] = []
    for part in _LIST_SEPARATORS.split(text):
        number: list[str] = []
        for word in part.split():
            if "@" in word or (word.startswith("+") and number):
                if number:
                    contacts.append(" ".join(number))
                number = []
            if "@" in word:
                contacts.append(word)
            else:
                number.append(word)
        if number:
            contacts.append(" ".join(number))
    return contacts


class FriendsField(Field):
    """The repeated `friend` inputs, each of which may hold several contacts.

    `entries` are the inputs as typed (blanks too: the form is shown again as it was), `data`
    every contact in them, `origins` the input (0-based) each contact came from, and
    `entry_errors` the problems with one input, shown beside it; `errors` has those too, so that
    a refused form is never taken for a valid one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entries: list[str] = []
        self.origins: list[int] = []
        self.entry_errors: dict[int, list[str]] = {}

    def process_formdata(self, valuelist: list[str]) -> None:
        self.entries = list(valuelist)
        self.data = []
        self.origins = []
        for index, value in enumerate(valuelist):
            contacts = split_contacts(value)
            self.data.extend(contacts)
            self.origins.extend([index] * len(contacts))

    def group_errors(self) -> list[str]:
        """The errors about the friends as a whole (how many), not about one input."""
        own = [e for errors in self.entry_errors.values() for e in errors]
        return [e for e in self.errors if e not in own]

    def _value(self) -> str:  # pragma: no cover - rendered by our own template
        return ""


class FriendWording:
    """What the form says about the friends' contacts, for the kinds of contact the campaign's
    channels reach: whole sentences per set, as a noun dropped into a sentence reads wrong in
    Dutch and French."""

    def __init__(self, kinds: frozenset[ContactKind], max_friends: int) -> None:
        self.kinds = kinds
        self.max_friends = max_friends

    @property
    def _phones_only(self) -> bool:
        return self.kinds == frozenset({ContactKind.PHONE_NUMBER})

    def legend(self) -> str:
        if len(self.kinds) > 1:
            return gettext("Your friends' email addresses or phone numbers")
        if self._phones_only:
            return gettext("Your friends' phone numbers")
        return gettext("Your friends' email addresses")

    def hint(self) -> str:
        # %(count)s, not %(num)d: the msgids the page's template marked before, translated.
        count = self.max_friends
        if len(self.kinds) > 1:
            return ngettext(
                "One friend: an email address or a mobile number.",
                "Up to %(count)s friends: an email address or a mobile number each.",
                count,
                count=count,
            )
        if self._phones_only:
            return ngettext(
                "One friend: a mobile number.", "Up to %(count)s friends: a mobile number each.", count, count=count
            )
        return ngettext(
            "One friend: an email address.", "Up to %(count)s friends: an email address each.", count, count=count
        )

    def paste_hint(self) -> str:
        return gettext("Several in one field? Separate them with commas.")


@lru_cache(maxsize=64)
def _wtforms_catalogue(locale: str) -> NullTranslations:
    """WTForms' own messages in one language, read once per process (Flask-WTF reads the file
    again for every request, which the forward POST, a hot path, cannot afford)."""
    return Translations.load(messages_path(), [locale], domain="wtforms")


class ForwardForm(FlaskForm):
    class Meta(FlaskForm.Meta):
        def get_translations(self, form: Any) -> Any:
            if not current_app.config.get("WTF_I18N_ENABLED", True):
                return super().get_translations(form)
            return _wtforms_catalogue(str(get_locale() or "en"))

    sender_name = StringField(
        lazy_gettext("Your name"),
        validators=[
            DataRequired(lazy_gettext("Enter your name, so your friends know who sent this.")),
            _too_long(NAME_MAX),
            # The name is printed in the subject line of every email.
            plain_text(_name_problem, NAME_MAX, in_subject=True),
        ],
        filters=[_typed_text],
    )
    sender_contact = StringField(
        lazy_gettext("Your email or phone (optional)"),
        validators=[Optional(), _too_long(254)],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
    )
    friend = FriendsField(lazy_gettext("Your friends' email addresses or phone numbers"))
    note = TextAreaField(
        lazy_gettext("A short note (optional)"),
        validators=[Optional(), _too_long(NOTE_MAX), plain_text(_note_problem, NOTE_MAX, allow_newlines=True)],
        filters=[_typed_text],
    )
    # The language the page was shown in (its switch, or the browser's choice): one of the
    # campaign's, kept with the forward for the friend's message and pages.
    locale = HiddenField(validators=[Optional(), Length(max=16)])
    ref = HiddenField()
    # The A/B variant the page showed (signed; engine.services.variants): the forwards are its.
    # The embedded form has no cookie to carry it; this field is the same for both.
    variant = HiddenField(validators=[Optional(), Length(max=512)])
    # When the page was rendered (signed): a person takes a few seconds, a bot does not.
    rendered = HiddenField()
    # The honeypot: hidden from people, filled in by bots that fill in everything.
    website = StringField(lazy_gettext("Leave this empty"))
    # A solved proof of work (engine.challenge), put in by the ALTCHA widget, which adds its own
    # hidden input: it is shown only past the soft threshold, and never rendered from here.
    altcha = HiddenField()
    # Under a policy that asks for it (eu-strict), the signed digest of the previewed submission.
    preview_token = HiddenField()
    # The channel the sender chose for phone numbers (a text or WhatsApp), where the page offers
    # a choice; empty: each contact goes by the channel that reads it by default.
    by = StringField(validators=[Optional(), Length(max=32)])

    def __init__(
        self,
        *args: Any,
        max_friends: int,
        regions: Sequence[str],
        locales: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        # Embedded on a brand's site, the form has no session CSRF token: its signed stamp
        # stands in for one (engine.services.embeds).
        kwargs.setdefault("meta", form_meta())
        super().__init__(*args, **kwargs)
        self.max_friends = max_friends
        # Where phone numbers typed without a country code are read, in order (the campaign's).
        self.regions = tuple(regions)
        # The languages the campaign offers; None: not known yet (nothing to check against).
        self.locales = tuple(locales) if locales is not None else None
        self.friend_contacts: list[Contact] = []
        self.sender: Contact | None = None

    def validate_locale(self, field: Field) -> None:
        if field.data and self.locales is not None and field.data not in self.locales:
            raise ValidationError(gettext("Choose one of the languages this offer is in."))

    def validate_sender_contact(self, field: Field) -> None:
        if not field.data:
            return
        try:
            self.sender = parse_contact_in(field.data, self.regions)
        except InvalidContact:
            raise ValidationError(contact_problem(field.data)) from None

    def validate_by(self, field: Field) -> None:
        if field.data and field.data not in channel_names():
            raise ValidationError(gettext("Choose how your friends get the offer."))

    def validate_friend(self, field: FriendsField) -> None:
        values: list[str] = field.data or []
        if not values:
            raise ValidationError(gettext("Enter at least one friend's email address or phone number."))
        # Count before parsing: a flood of entries is refused without the work of parsing it.
        # Each contact pasted into one input counts.
        if len(values) > self.max_friends:
            raise ValidationError(at_most_friends(self.max_friends))
        for value, index in zip(values, field.origins, strict=True):
            try:
                self.friend_contacts.append(parse_contact_in(value, self.regions, self._chosen()))
            except InvalidContact:
                # Named by the input it is in (the one its label numbers), beside that input.
                field.entry_errors.setdefault(index, []).append(contact_problem(value, index + 1))
        problems = [e for errors in field.entry_errors.values() for e in errors]
        if problems:
            field.errors = list(field.errors) + problems[:-1]
            raise ValidationError(problems[-1])

    def _chosen(self) -> tuple[str, ...] | None:
        """The sender's channel, for the contacts it reads; the others go by their default."""
        return (self.by.data,) if self.by.data in channel_names() else None

"""The send-to-friend form: field syntax here, business rules in the forwarding service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, StopValidation, ValidationError

from engine.channels import names as channel_names
from engine.contacts import Contact, InvalidContact, parse_contact
from engine.text import NAME_MAX, NOTE_MAX, normalised, text_problem


def plain_text(
    kind: str, max_length: int, *, allow_newlines: bool = False, in_subject: bool = False
) -> Callable[[FlaskForm, Field], None]:
    def check(form: FlaskForm, field: Field) -> None:
        value = field.data or ""
        if len(value) > max_length:
            # Length has said so already (WTForms runs every check): no need to read a flood.
            raise StopValidation()
        region = getattr(form, "default_region", "US")
        problem = text_problem(kind, value, allow_newlines=allow_newlines, in_subject=in_subject, region=region)
        if problem:
            raise ValidationError(problem)

    return check


def _typed_text(value: object) -> object:
    """Stripped and normalised (NFKC): full-width letters are stored as the letters they are."""
    return normalised(value).strip() if isinstance(value, str) else value


class FriendsField(Field):
    """The repeated `friend` inputs: every value the browser sent, blanks dropped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entries: list[str] = []

    def process_formdata(self, valuelist: list[str]) -> None:
        self.entries = list(valuelist)
        self.data = [v.strip() for v in valuelist if v.strip()]

    def _value(self) -> str:  # pragma: no cover - rendered by our own template
        return ""


class ForwardForm(FlaskForm):
    sender_name = StringField(
        "Your name",
        validators=[
            DataRequired("Enter your name, so your friends know who sent this."),
            Length(max=NAME_MAX),
            # The name is printed in the subject line of every email.
            plain_text("Your name", NAME_MAX, in_subject=True),
        ],
        filters=[_typed_text],
    )
    sender_contact = StringField(
        "Your email or phone (optional)",
        validators=[Optional(), Length(max=254)],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
    )
    friend = FriendsField("Your friends' email addresses or phone numbers")
    note = TextAreaField(
        "A short note (optional)",
        validators=[Optional(), Length(max=NOTE_MAX), plain_text("The note", NOTE_MAX, allow_newlines=True)],
        filters=[_typed_text],
    )
    ref = HiddenField()
    # When the page was rendered (signed): a person takes a few seconds, a bot does not.
    rendered = HiddenField()
    # The honeypot: hidden from people, filled in by bots that fill in everything.
    website = StringField("Leave this empty")
    # A solved proof of work (engine.challenge), put in by the ALTCHA widget, which adds its own
    # hidden input: it is shown only past the soft threshold, and never rendered from here.
    altcha = HiddenField()
    # Under a policy that asks for it (eu-strict), the signed digest of the previewed submission.
    preview_token = HiddenField()
    # The channel the sender chose for phone numbers (a text or WhatsApp), where the page offers
    # a choice; empty: each contact goes by the channel that reads it by default.
    by = StringField(validators=[Optional(), Length(max=32)])

    def __init__(self, *args: Any, max_friends: int, default_region: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_friends = max_friends
        self.default_region = default_region
        self.friend_contacts: list[Contact] = []
        self.sender: Contact | None = None

    def validate_sender_contact(self, field: Field) -> None:
        if not field.data:
            return
        try:
            self.sender = parse_contact(field.data, self.default_region)
        except InvalidContact as error:
            raise ValidationError(f"That is not a valid email address or phone number: {error}") from None

    def validate_by(self, field: Field) -> None:
        if field.data and field.data not in channel_names():
            raise ValidationError("Choose how your friends get the offer.")

    def validate_friend(self, field: FriendsField) -> None:
        values: list[str] = field.data or []
        if not values:
            raise ValidationError("Enter at least one friend's email address or phone number.")
        # Count before parsing: a flood of entries is refused without the work of parsing it.
        if len(values) > self.max_friends:
            raise ValidationError(f"You can send this offer to at most {self.max_friends} friends at a time.")
        problems = []
        for position, value in enumerate(values, start=1):
            try:
                self.friend_contacts.append(parse_contact(value, self.default_region, self._chosen()))
            except InvalidContact as error:
                problems.append(f"Friend {position}: {error}")
        if problems:
            field.errors = list(field.errors) + problems[:-1]
            raise ValidationError(problems[-1])

    def _chosen(self) -> tuple[str, ...] | None:
        """The sender's channel, for the contacts it reads; the others go by their default."""
        return (self.by.data,) if self.by.data in channel_names() else None

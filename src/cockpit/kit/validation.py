"""Small validators shared by schemas, services and the command line."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from cockpit.kit.errors import InvalidInput


def normalize_email(value: str, *, field: str = "email") -> str:
    """A syntactically valid address, lower-cased; raises InvalidInput naming the field."""
    text = value.strip()
    if len(text) > 254:
        raise InvalidInput(
            "invalid_email",
            "E-mail addresses have at most 254 characters.",
            details=[{"field": field, "message": "at most 254 characters"}],
        )
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        message = f"'{text}' is not a valid e-mail address: {exc}"
        raise InvalidInput("invalid_email", message, details=[{"field": field, "message": str(exc)}]) from exc
    return info.normalized.lower()


def require_text(value: str, *, field: str, label: str, max_length: int, min_length: int = 1) -> str:
    text = value.strip()
    if len(text) < min_length:
        raise InvalidInput(
            "invalid_input", f"{label} is required.", details=[{"field": field, "message": "required"}]
        )
    if len(text) > max_length:
        raise InvalidInput(
            "invalid_input",
            f"{label} has at most {max_length} characters.",
            details=[{"field": field, "message": f"at most {max_length} characters"}],
        )
    return text

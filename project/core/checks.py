"""System checks: a wrong encryption key is an error for every command."""

from django.core.checks import Error, register

from .keys import WrongEncryptionKey, verify_field_key


@register("security")
def field_key_check(app_configs=None, **kwargs):
    try:
        verify_field_key()
    except WrongEncryptionKey as exc:
        return [Error(str(exc), id="ensemble.E001")]
    return []

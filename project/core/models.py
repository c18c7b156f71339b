"""Cross-cutting models: the encryption-key canary."""

from django.db import models
from encrypted_model_fields.fields import EncryptedCharField

CANARY_PLAINTEXT = "ensemble-live encryption canary"


class KeyCanary(models.Model):
    """One row, written under the current field key on first start. Reading it
    back proves the configured key can decrypt what is stored."""

    value = EncryptedCharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)

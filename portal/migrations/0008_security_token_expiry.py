from datetime import timedelta

from django.db import migrations, models
from django.utils import timezone


def expire_old_tokens(apps, schema_editor):
    """Tokens made before expiries existed get the default 90 days from now, not forever."""
    ApiToken = apps.get_model("portal", "ApiToken")
    ApiToken.objects.filter(expires_at__isnull=True).update(expires_at=timezone.now() + timedelta(days=90))


class Migration(migrations.Migration):
    dependencies = [("portal", "0007_uploads_tus")]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(expire_old_tokens, migrations.RunPython.noop),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("portal", "0005_history_index")]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("portal", "0010_scale_release_day")]

    operations = [
        migrations.AddField(
            model_name="release",
            name="request_fingerprint",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="releaseset",
            name="request_fingerprint",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddIndex(
            model_name="releaseevent",
            index=models.Index(fields=["release", "id"], name="event_release_id"),
        ),
    ]

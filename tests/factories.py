from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from portal.crypto import encrypt_json
from portal.models import Connection, Dataset, Mapping, Membership, Release, Role, Team, Upload

TOUCAN_CREDENTIALS = {"login": "contributor@demo.example", "password": "toucan-demo-password"}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("password")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Team {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ADMIN


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    team = factory.SubFactory(TeamFactory)
    platform = "toucan"
    name = factory.Sequence(lambda n: f"Toucan {n}")
    base_url = "http://127.0.0.1:9/toucan"
    credentials_encrypted = factory.LazyFunction(lambda: encrypt_json(TOUCAN_CREDENTIALS))


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"Dataset {n}")


class MappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Mapping

    dataset = factory.SubFactory(DatasetFactory)
    team = factory.SelfAttribute("dataset.team")
    connection = factory.SubFactory(ConnectionFactory, team=factory.SelfAttribute("..dataset.team"))
    name = factory.Sequence(lambda n: f"Mapping {n}")
    target = factory.LazyFunction(lambda: {"small_app": "demo-app", "data_source": "sales.csv", "stage": "staging"})


class UploadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Upload

    dataset = factory.SubFactory(DatasetFactory)
    team = factory.SelfAttribute("dataset.team")
    original_name = "sales.csv"
    file = factory.LazyAttribute(lambda o: ContentFile(b"region,amount\nnorth,10\nsouth,20\n", name="upload"))
    size = 31
    sha256 = factory.LazyFunction(
        lambda: __import__("hashlib").sha256(b"region,amount\nnorth,10\nsouth,20\n").hexdigest()
    )


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Release

    mapping = factory.SubFactory(MappingFactory)
    team = factory.SelfAttribute("mapping.team")
    dataset = factory.SelfAttribute("mapping.dataset")
    platform = factory.SelfAttribute("mapping.connection.platform")

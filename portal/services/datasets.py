"""Writes on datasets."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from portal.models import Dataset, ObjectState, Team
from portal.services.audit import audit


@transaction.atomic
def dataset_create(*, team: Team, name: str, description: str = "", actor: User) -> Dataset:
    dataset = Dataset(team=team, name=name, description=description)
    dataset.full_clean()
    dataset.save()
    audit(actor=actor, action="dataset-created", obj=dataset)
    return dataset


@transaction.atomic
def dataset_update(*, dataset: Dataset, name: str, description: str, actor: User) -> Dataset:
    dataset.name, dataset.description = name, description
    dataset.full_clean()
    dataset.save()
    audit(actor=actor, action="dataset-updated", obj=dataset, changes={"name": name})
    return dataset


@transaction.atomic
def dataset_set_state(*, dataset: Dataset, state: str, actor: User) -> Dataset:
    old = dataset.state
    dataset.state = ObjectState(state)
    dataset.save(update_fields=["state"])
    audit(actor=actor, action="dataset-state", obj=dataset, changes={"from": old, "to": state})
    return dataset

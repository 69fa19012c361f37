"""Publications whose rows depend on the logged-in user, for the accounts tests."""

from django.db.models import Q

from dddp.api import API, Collection, Publication
from tests.accountsapp import models


class Diary(Collection):
    model = models.Diary


class MyDiaries(Publication):
    """The logged-in user's diaries; none when logged out."""

    def get_queries(self):
        if self.user_id is None:
            return [models.Diary.objects.none()]
        return [models.Diary.objects.filter(owner_id=self.user_id)]


class VisibleDiaries(Publication):
    """Public diaries, and the logged-in user's own: logging in adds to what a client holds."""

    def get_queries(self):
        mine = Q(owner_id=self.user_id) if self.user_id is not None else Q(pk__in=[])
        return [models.Diary.objects.filter(Q(public=True) | mine)]


class PublicDiaries(Publication):
    """The same for every user."""

    queries = [models.Diary.objects.filter(public=True)]


class Secret(Collection):
    model = models.Secret
    user_rel = "owner"
    client_writes = ("update", "remove")

    @classmethod
    def allow_update(cls, user, secret, field_names, modifier):
        return user.is_authenticated

    @classmethod
    def allow_remove(cls, user, secret):
        return user.is_authenticated


class Page(Collection):
    model = models.Page
    user_rel = "secret__owner"


class AllSecrets(Publication):
    """Every secret, as the publication asks: each user gets only its own (user_rel)."""

    queries = [models.Secret.objects.all(), models.Page.objects.all()]


class SecretsByText(Publication):
    def get_queries(self, text):
        return [models.Secret.objects.filter(text=text)]


API.register([Diary, MyDiaries, VisibleDiaries, PublicDiaries, Secret, Page, AllSecrets, SecretsByText])


@API.method
def whoami(this):
    """The connection's user id, as the server holds it."""
    return this.user_id


@API.method(login_required=True)
def members_only(this, value):
    """Only for a logged-in connection."""
    return value


class MembersDiaries(Publication):
    """The public diaries, for logged-in connections only."""

    login_required = True
    queries = [models.Diary.objects.filter(public=True)]


API.register([MembersDiaries])

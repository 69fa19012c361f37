"""What the logged-in users benchmark publishes besides live_app's `AllTicks`: each user's own notes."""

from dddp.api import API, Collection, Publication
from users_app import models


class Note(Collection):
    model = models.Note


class MyNotes(Publication):
    """A per-user publication: its queryset reads the connection's user, so one observer per user."""

    def get_queries(self):
        return [models.Note.objects.filter(owner_id=self.user_id)]


API.register([Note, MyNotes])

"""What every dddp server offers without being asked: publications Meteor clients expect.

`meteor_autoupdate_clientVersions` (A-21): a standard Meteor client subscribes
to it right after connecting. dddp does not serve the Meteor bundle, so there
is no version to publish: ready and empty, the client never reloads (a nosub
would make it retry with back-off and log "autoupdate subscription failed").
"""

from dddp.api import API, Publication


class AutoupdateClientVersions(Publication):
    name = "meteor_autoupdate_clientVersions"
    queries = []


API.register([AutoupdateClientVersions])

"""Django DDP: publish Django models to Meteor DDP clients, live, through PostgreSQL NOTIFY."""

# Above every release of the unrelated 2016 django-ddp (0.19.1) on the package index.
__version__ = "0.20.0.dev0"

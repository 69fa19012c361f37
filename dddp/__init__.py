"""Django DDP: publish Django models to Meteor DDP clients, live, through PostgreSQL NOTIFY."""

__version__ = "0.3.0.dev0"

#!/usr/bin/env python
"""The example project's manage.py: `python example/manage.py dddp 127.0.0.1:8000`."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

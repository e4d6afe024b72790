"""Demo data for ``make run``: ``flask demo load`` builds it through the real services.

It sits above every feature and nothing imports it but the application factory.
"""

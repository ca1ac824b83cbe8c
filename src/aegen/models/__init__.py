"""Model families; each module registers its models with :mod:`aegen.registry`."""

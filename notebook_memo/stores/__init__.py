"""Where results live: the local directory (diskcache and SQLite) and a shared remote tier.

``local`` is the first tier, one per cache directory; ``remote`` is the optional second one on
object storage or a shared directory, reached through the small interface in ``_base``.
"""

__all__ = ()

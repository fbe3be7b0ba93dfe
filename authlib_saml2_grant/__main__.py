"""``python -m authlib_saml2_grant``: the ``saml2-bearer`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

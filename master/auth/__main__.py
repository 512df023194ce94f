"""``python -m buildfarm.master.auth``: print a password_hash for a typed password."""

from buildfarm.master.auth.passwords import main

main()

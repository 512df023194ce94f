"""Out-of-band channels to a slave (ssh, bmc/IPMI, pdu, mozpool, bugzilla, aws): one
``IChannel`` provider per module.  None is implemented yet; see interfaces.py."""
